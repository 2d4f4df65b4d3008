// A real OpenID provider (npm `oidc-provider`) for Corbel's authentication tests
// (host/tests/oidc.rs). It serves plain HTTP on 127.0.0.1 with a random port, issues JWT access
// tokens for client-credentials clients, and prints its issuer URL as the first line on stdout.
//
//   OIDC_PROVIDER_CONFIG='{"resource": "https://corbel.test",
//                          "clients": [{"id": "ci", "secret": "s", "ttl": 1}],
//                          "signingKey": "-----BEGIN PRIVATE KEY-----\n…"}' node provider.mjs
//
// - resource: the one resource indicator (the `aud` of every access token); the default resource.
// - clients: client-credentials clients (client_secret_basic), with an optional token TTL in seconds
//   and optional `groups`, a claim of their access tokens (the API users of tests/api.rs).
// - port: the port to listen on; default a random free one.
// - registration: enables dynamic client registration (RFC 7591, at /reg) and its management
//   (RFC 7592), for the identity controller's tests (tests/identity.rs); `true`, or
//   {"initialAccessToken": "…"} to ask registrations for that bearer token.
// - scopes: the scopes registered clients may ask for (default ["api"]), which client-credentials
//   tokens for the resource carry.
// - signingKey: the RSA signing key (PKCS#8 PEM), so a test can also mint tokens the provider's
//   JWKS vouches for (from a wrong issuer, say). Without it a key is generated. (Tests pass one:
//   Node 20's generateKeyPairSync can deadlock in a garbage collection, about one start in 80.)
//
// The process exits when its stdin closes, so it never outlives the test that started it.

import { createPrivateKey, generateKeyPair, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { promisify } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(process.env.OIDC_PROVIDER_CONFIG ?? '{}');
const resource = config.resource ?? 'https://corbel.test';
const clients = config.clients ?? [];
const ttls = Object.fromEntries(clients.map((c) => [c.id, c.ttl ?? 600]));
const groups = Object.fromEntries(clients.filter((c) => c.groups).map((c) => [c.id, c.groups]));
const scopes = config.scopes ?? ['api'];
const registration = config.registration
  ? {
      registration: {
        enabled: true,
        initialAccessToken: config.registration.initialAccessToken ?? false,
      },
      registrationManagement: { enabled: true },
    }
  : {};

// With registration, clients live in an unbounded Map: oidc-provider's default in-memory adapter
// is an LRU of 1000 entries, and a client and its registration access token are two, so 500
// registered clients and a rotation of them would silently evict clients still in use.
const store = new Map();
class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    store.set(key, { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : undefined });
    if (payload.grantId) {
      const grant = `grant:${payload.grantId}`;
      store.set(grant, (store.get(grant) ?? new Set()).add(key));
    }
    if (payload.userCode) store.set(`userCode:${payload.userCode}`, id);
    if (payload.uid) store.set(`uid:${payload.uid}`, id);
  }

  async find(id) {
    const entry = store.get(this.key(id));
    if (!entry) return undefined;
    if (entry.expiresAt && entry.expiresAt < Date.now()) {
      store.delete(this.key(id));
      return undefined;
    }
    return entry.payload;
  }

  async findByUserCode(userCode) {
    const id = store.get(`userCode:${userCode}`);
    return id && this.find(id);
  }

  async findByUid(uid) {
    const id = store.get(`uid:${uid}`);
    return id && this.find(id);
  }

  async consume(id) {
    const entry = store.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of store.get(`grant:${grantId}`) ?? []) store.delete(key);
    store.delete(`grant:${grantId}`);
  }
}

const privateKey = config.signingKey
  ? createPrivateKey(config.signingKey)
  : (await promisify(generateKeyPair)('rsa', { modulusLength: 2048 })).privateKey;
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };

const server = createServer();
await new Promise((resolve) => server.listen(config.port ?? 0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: clients.map((c) => ({
    client_id: c.id,
    client_secret: c.secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  jwks: { keys: [signingKey] },
  extraTokenClaims: (_ctx, token) => (groups[token.clientId] ? { groups: groups[token.clientId] } : undefined),
  ...(config.registration ? { scopes: ['openid', ...scopes], adapter: MapAdapter } : {}),
  features: {
    ...registration,
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (_ctx, _client, oneOf) => oneOf ?? resource,
      getResourceServerInfo: (_ctx, indicator, client) => {
        // Anything else must be InvalidTarget (a 400); a plain Error would be a 500.
        if (indicator !== resource) throw new errors.InvalidTarget();
        return {
          scope: scopes.join(' '),
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: ttls[client.clientId] ?? 600,
        };
      },
    },
  },
});
provider.on('server_error', (_ctx, err) => console.error('oidc-provider server error:', err));

server.on('request', provider.callback());
process.stdout.write(`${issuer}\n`);

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
