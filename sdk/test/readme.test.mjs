// The token endpoint example of sdk/README.md must mint JWTs Herald accepts: right alg, kid,
// sub and exp, and a signature that verifies with the registered public key.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { generateKeyPairSync, verify } from "node:crypto";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");

function exampleSource() {
  const m = /```js\n(\/\/ token-endpoint\.mjs[\s\S]*?)```/.exec(readme);
  assert.ok(m, "README has the token-endpoint.mjs example");
  return m[1];
}

async function loadExample(privatePem, kid, tag) {
  process.env.HERALD_SIGNING_KEY_PEM = privatePem;
  process.env.HERALD_SIGNING_KEY_ID = kid;
  // The tag makes each import a distinct module (it reads the env at load).
  const src = exampleSource() + `\n// ${tag}\n`;
  return import("data:text/javascript;base64," + Buffer.from(src).toString("base64"));
}

const decode = (part) => JSON.parse(Buffer.from(part, "base64url").toString());

for (const [alg, type, opts] of [
  ["ES256", "ec", { namedCurve: "P-256" }],
  ["RS256", "rsa", { modulusLength: 2048 }],
]) {
  test(`the README's token endpoint mints a valid ${alg} user JWT`, async () => {
    const { privateKey, publicKey } = generateKeyPairSync(type, opts);
    const pem = privateKey.export({ type: type === "ec" ? "sec1" : "pkcs1", format: "pem" });
    const { mintHeraldToken } = await loadExample(pem, "sgk_123", alg);
    const token = mintHeraldToken(42, 300);
    const [h, p, s] = token.split(".");
    assert.deepEqual(decode(h), { alg, typ: "JWT", kid: "sgk_123" });
    const claims = decode(p);
    assert.equal(claims.sub, "42");
    const now = Math.floor(Date.now() / 1000);
    assert.ok(claims.exp > now && claims.exp <= now + 300);
    const ok = verify("sha256", Buffer.from(h + "." + p), { key: publicKey, dsaEncoding: "ieee-p1363" }, Buffer.from(s, "base64url"));
    assert.equal(ok, true);
    if (alg === "ES256") assert.equal(Buffer.from(s, "base64url").length, 64, "JWS ES256 signatures are r||s, 64 bytes");
  });
}
