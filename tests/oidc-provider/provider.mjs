// A real OpenID Provider for sigil's tests: npm oidc-provider with CIBA poll mode, so a test
// gets an ID token with two POSTs and no browser. Started by tests/src/oidc_provider.rs.
//
// usage: node provider.mjs [--alg RS256|PS256|ES256|EdDSA] [--port N] [--lifetime SECONDS]
//                          [--tls-cert PEM_FILE --tls-key PEM_FILE]   (serve https)
// prints one line {"port": N, "issuer": "http://127.0.0.1:N"} on stdout once it serves.
// Exits when stdin closes (the test process went away) or after --lifetime seconds.

import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const alg = option('--alg', 'RS256');
const lifetimeSecs = Number(option('--lifetime', '600'));
const listenPort = Number(option('--port', '0'));
const tlsCert = option('--tls-cert', null);
const tlsKey = option('--tls-key', null);

// Client ids the harness knows: tokens for the second one carry the wrong audience for sigil.
const CLIENT_IDS = ['sigstore', 'not-sigstore'];
const CLIENT_SECRET = 'sigil-test-secret';

// Claims a test may ask for beyond sub/email (CI workload identities, Dex federation).
const EXTRA_CLAIMS = [
  // GitHub Actions
  'actor', 'actor_id', 'environment', 'event_name', 'head_ref', 'base_ref', 'job_workflow_ref',
  'job_workflow_sha', 'ref', 'ref_protected', 'ref_type', 'repository', 'repository_id',
  'repository_owner', 'repository_owner_id', 'repository_visibility', 'run_attempt', 'run_id',
  'run_number', 'runner_environment', 'sha', 'workflow', 'workflow_ref', 'workflow_sha',
  // GitLab CI
  'ci_config_ref_uri', 'ci_config_sha', 'job_id', 'namespace_id', 'namespace_path',
  'pipeline_id', 'pipeline_source', 'project_id', 'project_path', 'project_visibility',
  'runner_id', 'user_email', 'user_id', 'user_login',
  // Buildkite, Kubernetes, Dex
  'organization_slug', 'pipeline_slug', 'build_number', 'job_id', 'kubernetes.io', 'federated_claims',
];

function signingKey(type, options, keyAlg) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: keyAlg, use: 'sig' };
}

const keys = [
  signingKey('rsa', { modulusLength: 2048 }, alg === 'PS256' ? 'PS256' : 'RS256'),
  signingKey('ec', { namedCurve: 'P-256' }, 'ES256'),
  signingKey('ed25519', {}, 'EdDSA'),
];

// Claims registered through a JSON login_hint, keyed by sub (the account id).
const claimsBySub = new Map();

const server = tlsCert
  ? https.createServer({ cert: readFileSync(tlsCert), key: readFileSync(tlsKey) })
  : http.createServer();
server.listen(listenPort, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `${tlsCert ? 'https' : 'http'}://127.0.0.1:${port}`;

  const provider = new Provider(issuer, {
    clients: CLIENT_IDS.map((clientId) => ({
      client_id: clientId,
      client_secret: CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_post',
      grant_types: [
        'authorization_code',
        'urn:openid:params:grant-type:ciba',
        'urn:ietf:params:oauth:grant-type:device_code',
      ],
      response_types: ['code'],
      // Native clients may use a loopback redirect on any port (RFC 8252 7.3): the sigil
      // client's login listener uses /auth/callback.
      redirect_uris: ['http://127.0.0.1/callback', 'http://127.0.0.1/auth/callback'],
      application_type: 'native',
      backchannel_token_delivery_mode: 'poll',
      id_token_signed_response_alg: alg,
    })),
    jwks: { keys },
    claims: { openid: ['sub', ...EXTRA_CLAIMS], email: ['email', 'email_verified'] },
    // Put email into the ID token itself, as Google and Dex do.
    conformIdTokenClaims: false,
    findAccount: async (ctx, sub) => ({
      accountId: sub,
      async claims() {
        return { sub, ...(claimsBySub.get(sub) ?? { email: sub, email_verified: true }) };
      },
    }),
    features: {
      // Interactive logins (authorization code, device flow) go through the built-in
      // development login and consent forms, which a test fills in over HTTP.
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      ciba: {
        enabled: true,
        deliveryModes: ['poll'],
        // A plain hint is the email; a JSON hint {"sub": ..., "claims": {...}} sets the claims.
        async processLoginHint(ctx, hint) {
          if (hint.startsWith('{')) {
            const { sub, claims } = JSON.parse(hint);
            claimsBySub.set(sub, claims ?? {});
            return sub;
          }
          return hint;
        },
        async verifyUserCode() {},
        async validateRequestContext() {},
        // The "device" approves at once: grant the requested scopes and report the result.
        async triggerAuthenticationDevice(ctx, request, account, client) {
          const grant = new provider.Grant({ clientId: client.clientId, accountId: account.accountId });
          grant.addOIDCScope(request.scope);
          await grant.save();
          await provider.backchannelResult(request, grant);
        },
      },
    },
  });

  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ port, issuer })}\n`);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), lifetimeSecs * 1000);
