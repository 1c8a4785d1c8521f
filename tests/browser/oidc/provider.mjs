// A real OpenID provider for the SSO test: the npm `oidc-provider` package
// (a certified OpenID Connect implementation), with one confidential test
// client (the controller) and test people with and without an NIP claim.
// Its development login form takes any password; the login name is the
// account id.
//
//   OIDC_REDIRECT=https://127.0.0.1:PORT/console/sso/callback \
//   OIDC_CLIENT_ID=cadang OIDC_CLIENT_SECRET=... node oidc/provider.mjs
//
// Prints `ISSUER http://127.0.0.1:<port>` once it listens (port 0: any).
import { generateKeyPairSync } from "node:crypto";
import Provider from "oidc-provider";

const env = (k, d) => process.env[k] ?? d;
const redirect = env("OIDC_REDIRECT");
if (!redirect) {
  console.error("OIDC_REDIRECT is required");
  process.exit(2);
}

// The people of the test regency's provider. `nip` is released with the
// `nip` scope; the auditor and the "operator" below have none.
export const ACCOUNTS = {
  "wali.dukcapil": {
    name: "Wali DUKCAPIL",
    email: "wali.dukcapil@kab-uji.go.id",
    email_verified: true,
    nip: "198111072008042001",
  },
  "wali.disdik": {
    name: "Wali DISDIK",
    email: "wali.disdik@kab-uji.go.id",
    email_verified: true,
    nip: "198702142012012003",
  },
  "operator": {
    name: "Operator Pusat Data",
    email: "operator@kab-uji.go.id",
    email_verified: true,
    nip: "199001012015031002",
  },
  "auditor": {
    name: "Auditor Inspektorat",
    email: "auditor@kab-uji.go.id",
    email_verified: true,
  },
  "operator.tanpa.nip": {
    name: "Operator tanpa NIP",
    email: "operator@kab-uji.go.id",
    email_verified: true,
  },
};

// A fresh signing key each run (RS256), so nothing secret is committed.
const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: "jwk" }), kid: "test-1", alg: "RS256", use: "sig" };

const configuration = {
  clients: [
    {
      client_id: env("OIDC_CLIENT_ID", "cadang"),
      client_secret: env("OIDC_CLIENT_SECRET", "cadang-test-secret"),
      redirect_uris: [redirect],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  jwks: { keys: [jwk] },
  // The controller always sends PKCE; make the provider insist on it.
  pkce: { required: () => true },
  scopes: ["openid", "profile", "email", "nip"],
  claims: {
    openid: ["sub"],
    profile: ["name"],
    email: ["email", "email_verified"],
    nip: ["nip"],
  },
  // The claims go into the ID token itself (the controller reads only it).
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ["cadang-browser-test-cookie-key"] },
  async findAccount(_ctx, id) {
    const person = ACCOUNTS[id];
    if (!person) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...person };
      },
    };
  },
};

const port = Number(env("OIDC_PORT", "0"));
const server = (await import("node:http")).createServer();
server.listen(port, "127.0.0.1", () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration);
  server.on("request", provider.callback());
  console.log(`ISSUER ${issuer}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
