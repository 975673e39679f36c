// OAuth 2.0 authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636 S256) in the
// browser, against the web authorization function (seed 004 §6.X.2.2.3 steps 2-3).
//
// The code verifier lives in sessionStorage only between the redirect to the
// authorization endpoint and the return; the state parameter (CSRF, RFC 6749
// §10.12) and the iss parameter (mix-up defence, RFC 9207) are checked on return.
// Tokens stay in memory and sessionStorage (this tab only, gone when it closes).

import { randomBytes, toBase64Url, fromBase64Url, utf8 } from './bytes.js';

const PENDING_KEY = 'wic.oauth.pending';
const TOKEN_KEY = 'wic.oauth.token';
const PENDING_TTL_MS = 10 * 60 * 1000;

export class OAuthError extends Error {
  constructor(message, code) { super(message); this.name = 'OAuthError'; this.code = code || ''; }
}

/** S256 code challenge: BASE64URL(SHA-256(ASCII(verifier))) (RFC 7636 §4.2). */
export async function codeChallenge(verifier) {
  const digest = await crypto.subtle.digest('SHA-256', utf8(verifier));
  return toBase64Url(new Uint8Array(digest));
}

/** Redirect the browser to the authorization endpoint. */
export async function startLogin(auth) {
  const verifier = toBase64Url(randomBytes(32)); // 43 characters, RFC 7636 §4.1
  const state = toBase64Url(randomBytes(16));
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({
    verifier, state, issuer: auth.issuer, created: Date.now(),
  }));
  const url = new URL(auth.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: auth.client_id,
    redirect_uri: auth.redirect_uri,
    scope: auth.scope,
    state,
    code_challenge: await codeChallenge(verifier),
    code_challenge_method: 'S256',
  }).toString();
  window.location.assign(url.toString());
}

/** The authorization response in the current URL (RFC 6749 §4.1.2), or null. */
export function callbackParams(location) {
  const params = new URLSearchParams(location.search);
  if (!params.has('code') && !params.has('error')) return null;
  return {
    code: params.get('code'),
    state: params.get('state'),
    iss: params.get('iss'),
    error: params.get('error'),
    errorDescription: params.get('error_description'),
  };
}

async function tokenRequest(auth, fields) {
  let response;
  try {
    response = await fetch(auth.token_endpoint, {
      method: 'POST',
      body: new URLSearchParams(fields),
      credentials: 'omit',
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
    });
  } catch (err) {
    throw new OAuthError(`cannot reach the authorization server (${err.message || err})`, 'network');
  }
  let body = {};
  try { body = await response.json(); } catch { /* not JSON */ }
  if (!response.ok || !body.access_token) {
    const why = body.error_description || body.error || `HTTP ${response.status}`;
    throw new OAuthError(`the token request was refused: ${why}`, body.error);
  }
  if (String(body.token_type).toLowerCase() !== 'bearer') {
    throw new OAuthError(`unexpected token type ${body.token_type}`);
  }
  return {
    access_token: body.access_token,
    refresh_token: body.refresh_token || null,
    scope: body.scope || '',
    expires_at: Date.now() + 1000 * (Number(body.expires_in) || 600),
  };
}

/** Exchange the code for tokens (RFC 6749 §4.1.3 with the verifier, RFC 7636 §4.5). */
export async function completeLogin(auth, params) {
  const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || 'null');
  sessionStorage.removeItem(PENDING_KEY);
  if (params.error) {
    throw new OAuthError(`login refused: ${params.errorDescription || params.error}`, params.error);
  }
  if (!pending || Date.now() - pending.created > PENDING_TTL_MS) {
    throw new OAuthError('no login in progress (or it expired): sign in again', 'no_pending');
  }
  if (!params.state || params.state !== pending.state) {
    throw new OAuthError('the login response does not match the request (state)', 'state');
  }
  if (params.iss !== null && params.iss !== auth.issuer) { // RFC 9207 §2.4
    throw new OAuthError(`the login response comes from another issuer (${params.iss})`, 'iss');
  }
  const token = await tokenRequest(auth, {
    grant_type: 'authorization_code',
    code: params.code,
    redirect_uri: auth.redirect_uri,
    client_id: auth.client_id,
    code_verifier: pending.verifier,
  });
  saveToken(token);
  return token;
}

/** RFC 6749 §6 refresh (the server rotates the refresh token). */
export async function refreshToken(auth, token) {
  if (!token || !token.refresh_token) throw new OAuthError('no refresh token', 'no_refresh');
  const renewed = await tokenRequest(auth, {
    grant_type: 'refresh_token', refresh_token: token.refresh_token, client_id: auth.client_id,
  });
  if (!renewed.refresh_token) renewed.refresh_token = token.refresh_token;
  saveToken(renewed);
  return renewed;
}

/** RFC 7009 revocation of the refresh token (best effort, on log out). */
export async function revokeToken(auth, token) {
  if (!auth.revocation_endpoint || !token) return;
  const value = token.refresh_token || token.access_token;
  try {
    await fetch(auth.revocation_endpoint, {
      method: 'POST',
      body: new URLSearchParams({ token: value, client_id: auth.client_id }),
      credentials: 'omit',
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
    });
  } catch { /* the token expires anyway */ }
}

export function saveToken(token) {
  try { sessionStorage.setItem(TOKEN_KEY, JSON.stringify(token)); } catch { /* ignore */ }
}

export function loadToken() {
  try {
    const token = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || 'null');
    if (token && token.access_token && (token.expires_at > Date.now() + 30000 || token.refresh_token)) {
      return token;
    }
  } catch { /* ignore */ }
  return null;
}

export function clearToken() {
  try { sessionStorage.removeItem(TOKEN_KEY); sessionStorage.removeItem(PENDING_KEY); } catch { /* ignore */ }
}

/**
 * The claims of a JWT access token (RFC 9068), unverified: only to show who is
 * logged in and to pick the IMPU for From/To; the gateway verifies the token.
 */
export function tokenClaims(accessToken) {
  try {
    const payload = String(accessToken).split('.')[1];
    return JSON.parse(new TextDecoder().decode(fromBase64Url(payload)));
  } catch {
    return {};
  }
}
