// Verify a Prometora webhook in Node.js (18+) with nothing but node:crypto.
//
// Prometora signs deliveries as Standard Webhooks (https://www.standardwebhooks.com/) do:
//   webhook-signature: v1,<base64 HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{raw body}")>
// where key is the base64-decoded part of the endpoint secret after "whsec_". During a secret
// rotation the header holds several signatures separated by spaces; any one may match.
//
// Express: read the RAW body (a re-serialised JSON body no longer matches its signature):
//
//   const express = require("express");
//   const { verifyWebhook, WebhookVerificationError } = require("./verify");
//   const app = express();
//   app.post("/webhooks/prometora", express.raw({ type: "application/json" }), (req, res) => {
//     let event;
//     try {
//       event = verifyWebhook(req.body, req.headers, process.env.PROMETORA_WEBHOOK_SECRET);
//     } catch (err) {
//       if (err instanceof WebhookVerificationError) return res.status(400).send(err.reason);
//       throw err;
//     }
//     // Deduplicate on event.id (the webhook-id header): retries and resends repeat it.
//     res.sendStatus(200);
//   });
//
// Fetch-style handlers (Next.js route handlers, Cloudflare Workers, Deno, Bun) work the same:
//   const raw = Buffer.from(await request.arrayBuffer());
//   const event = verifyWebhook(raw, request.headers, secret);
"use strict";

const crypto = require("node:crypto");

class WebhookVerificationError extends Error {
  constructor(reason, message) {
    super(`${reason}: ${message}`);
    this.name = "WebhookVerificationError";
    this.reason = reason; // e.g. "signature_mismatch", "timestamp_too_old"
  }
}

const fail = (reason, message) => new WebhookVerificationError(reason, message);

function secretKey(secret) {
  if (typeof secret !== "string" || !secret.startsWith("whsec_")) {
    throw fail("invalid_secret", "secret must start with whsec_");
  }
  const b64 = secret.slice("whsec_".length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) {
    throw fail("invalid_secret", "secret is not valid base64");
  }
  const key = Buffer.from(b64, "base64");
  if (key.length < 24 || key.length > 64) {
    throw fail("invalid_secret", "secret must encode 24 to 64 bytes");
  }
  return key;
}

// One header's value from a Fetch `Headers` or a plain object (Node's req.headers), any case.
function header(headers, name) {
  if (headers && typeof headers.get === "function") {
    const value = headers.get(name);
    return value === null ? [] : [value];
  }
  const values = [];
  for (const [key, value] of Object.entries(headers || {})) {
    if (key.toLowerCase() !== name) continue;
    if (Array.isArray(value)) values.push(...value);
    else if (value !== undefined) values.push(String(value));
  }
  return values;
}

function required(headers, name) {
  const values = header(headers, name);
  if (values.length === 0 || values[0].trim() === "") throw fail("missing_header", `missing ${name} header`);
  if (values.length > 1) throw fail("duplicate_header", `${name} header sent more than once`);
  return values[0];
}

/**
 * Check one delivery and return its event, or throw WebhookVerificationError.
 * @param {Buffer|string} rawBody  the request body exactly as received
 * @param {object|Headers} headers request headers (names in any case)
 * @param {string} secret          the endpoint's whsec_ secret
 * @param {number} toleranceSeconds how far webhook-timestamp may be from now, either way
 * @param {number} nowSeconds      the current unix time (for tests)
 */
function verifyWebhook(rawBody, headers, secret, toleranceSeconds = 300, nowSeconds = Date.now() / 1000) {
  const key = secretKey(secret);
  const body = Buffer.isBuffer(rawBody) ? rawBody : Buffer.from(String(rawBody), "utf8");
  const id = required(headers, "webhook-id");
  const timestamp = required(headers, "webhook-timestamp");
  const signatures = required(headers, "webhook-signature");

  // Node joins repeated headers with ", ": a space can never be part of a genuine id.
  if (!/^[\x21-\x7e]{1,255}$/.test(id)) throw fail("invalid_id", "malformed webhook-id");
  if (!/^[0-9]{1,15}$/.test(timestamp)) throw fail("invalid_timestamp", "malformed webhook-timestamp");
  const age = nowSeconds - Number(timestamp);
  if (age > toleranceSeconds) throw fail("timestamp_too_old", `timestamp is ${Math.floor(age)} s old`);
  if (-age > toleranceSeconds) throw fail("timestamp_too_new", "timestamp is in the future");

  const candidates = [];
  for (const part of signatures.split(/\s+/).filter(Boolean).slice(0, 32)) {
    const comma = part.indexOf(",");
    if (comma < 0 || part.slice(0, comma) !== "v1") continue; // other versions are skipped
    const value = part.slice(comma + 1);
    if (/^[A-Za-z0-9+/]+={0,2}$/.test(value)) candidates.push(Buffer.from(value, "base64"));
  }
  if (candidates.length === 0) throw fail("no_signature", "no v1 signature");

  const expected = crypto
    .createHmac("sha256", key)
    .update(Buffer.concat([Buffer.from(`${id}.${timestamp}.`, "utf8"), body]))
    .digest();
  let matched = false;
  for (const sig of candidates) {
    if (sig.length === expected.length && crypto.timingSafeEqual(sig, expected)) matched = true;
  }
  if (!matched) throw fail("signature_mismatch", "no signature matches this secret");

  let event;
  try {
    event = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(body));
  } catch {
    throw fail("invalid_json", "body is not valid UTF-8 JSON");
  }
  if (event === null || typeof event !== "object" || Array.isArray(event)) {
    throw fail("invalid_event", "body is not a JSON object");
  }
  for (const field of ["id", "type", "created"]) {
    if (typeof event[field] !== "string") throw fail("invalid_event", `event has no string ${field}`);
  }
  if (!("data" in event)) throw fail("invalid_event", "event has no data");
  if (event.id !== id) throw fail("id_mismatch", "event id differs from the webhook-id header");
  return event;
}

module.exports = { verifyWebhook, WebhookVerificationError };
