// webims WIC (WebRTC IMS Client), entry point: loads /config.json from the client
// script server, signs in (web token via PKCE, IMS digest, or software USIM),
// registers over SIP/WebSocket with JsSIP and drives the phone UI.

import * as JsSIP from 'jssip';

import { SoftUsim } from './aka.js';
import {
  callbackParams, clearToken, completeLogin, loadToken, refreshToken, revokeToken, startLogin, tokenClaims,
} from './oauth.js';
import { CALL, Phone, REG, loadSqnState } from './phone.js';
import { StatsPoller } from './stats.js';
import {
  $, clearStats, invalid, log, render, renderAccount, renderStats, setError, setStatus, setupTabs, updateTimer,
} from './ui.js';

const ICE_MARGIN_MS = 60 * 1000;

class App {
  constructor() {
    this.config = null;
    this.phone = null;
    this.token = null;
    this.tokenTimer = null;
    this.loggingIn = false;
    this.callTimer = null;
    this.stats = null;
  }

  async boot() {
    if (new URLSearchParams(window.location.search).has('debug')) JsSIP.debug.enable('JsSIP:*');
    else JsSIP.debug.disable();
    try {
      this.config = await this.fetchConfig();
    } catch (err) {
      document.body.dataset.state = 'failed';
      setStatus('');
      setError(`Cannot load the configuration: ${err.message || err}`);
      return;
    }
    const { config } = this;
    this.phone = new Phone(JsSIP, config, $('remote-audio'));
    this.phone.iceRefresher = () => this.refreshIce();
    this.phone.tokenRefresher = () => this.renewToken();
    this.phone.addEventListener('change', () => this.onChange());
    this.phone.addEventListener('notice', (ev) => this.onNotice(ev.detail));
    this.phone.addEventListener('callended', (ev) => {
      const { peer, text, durationMs } = ev.detail;
      const duration = durationMs ? `, ${Math.round(durationMs / 1000)} s` : '';
      if (text) renderAccount(this.phone, `${text.includes(peer) ? text : `${peer}: ${text}`}${duration}`);
    });
    this.phone.addEventListener('dtmf', (ev) => {
      const out = $(ev.detail.originator === 'local' ? 'dtmf-sent' : 'dtmf-received');
      out.textContent += ev.detail.tone;
    });
    this.selectMode = setupTabs(config.login_modes, () => setError(''));
    this.bindControls();
    setStatus('');
    this.render();
    const callback = callbackParams(window.location);
    if (callback) {
      window.history.replaceState(null, '', window.location.pathname); // drop code & state from the URL
      await this.finishWebLogin(callback);
    } else if (config.login_modes.includes('web-token') && loadToken()) {
      this.token = loadToken();
      this.startWithToken();
    } else {
      setStatus(`Sign in to ${config.ims_domain}`);
    }
    this.render();
  }

  async fetchConfig() {
    const response = await fetch('/config.json', { cache: 'no-store', credentials: 'same-origin' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const config = await response.json();
    config.fetchedAt = Date.now();
    // The server's clock decides TURN credential expiry: keep the skew.
    config.skewMs = config.server_time ? config.server_time * 1000 - Date.now() : 0;
    return config;
  }

  /** Fresh TURN credentials before a call when the current ones are about to expire. */
  async refreshIce() {
    const { config } = this;
    if (!config.ice_expires_at) return;
    const expiresLocal = config.ice_expires_at * 1000 - config.skewMs;
    if (expiresLocal - Date.now() > ICE_MARGIN_MS) return;
    try {
      const fresh = await this.fetchConfig();
      Object.assign(config, { ice_servers: fresh.ice_servers, ice_expires_at: fresh.ice_expires_at });
      this.phone.iceServers = fresh.ice_servers;
      log('ICE servers refreshed');
    } catch (err) {
      log(`ICE refresh failed: ${err.message || err}`);
    }
  }

  render() {
    if (!this.phone) return;
    render(this.phone, { loggingIn: this.loggingIn });
    renderAccount(this.phone);
  }

  onChange() {
    const before = document.body.dataset.state;
    const { phone } = this;
    if (phone.reg === REG.REGISTERED || phone.reg === REG.FAILED || phone.reg === REG.IDLE) this.loggingIn = false;
    this.render();
    const state = document.body.dataset.state;
    if (phone.call === CALL.ACTIVE || phone.call === CALL.HELD) this.startCallTimers();
    if (phone.call === CALL.NONE) this.stopCallTimers();
    if (state === before) return;
    // focus management: move focus to what the new state is about
    if (state === 'registered' && before !== 'login') $('target').focus();
    else if (state === 'registered') $('target').focus();
    else if (state === 'incoming') $('answer').focus();
    else if (state === 'outgoing') $('hangup').focus();
    else if (state === 'login' && phone.reg === REG.FAILED) {
      const panel = document.querySelector('.panel:not([hidden])');
      const first = panel && panel.querySelector('input, button');
      if (first) first.focus();
    }
  }

  onNotice({ text, level }) {
    if (level === 'error') {
      setError(text);
    } else {
      setError('');
      setStatus(text);
    }
  }

  startCallTimers() {
    if (!this.callTimer) this.callTimer = setInterval(() => updateTimer(this.phone), 1000);
    updateTimer(this.phone);
    if (!this.stats) {
      this.stats = new StatsPoller(() => this.phone.connection, renderStats, 1000);
      this.stats.start();
    }
  }

  stopCallTimers() {
    if (this.callTimer) clearInterval(this.callTimer);
    this.callTimer = null;
    if (this.stats) this.stats.stop();
    this.stats = null;
    clearStats();
    updateTimer(this.phone);
  }

  // ------------------------------------------------------------ sign in

  async finishWebLogin(params) {
    const auth = this.config.auth;
    if (!auth) { setError('Web sign-in is not offered here'); return; }
    this.selectMode('web-token');
    this.loggingIn = true;
    this.render();
    setStatus('Completing the web sign-in…');
    try {
      this.token = await completeLogin(auth, params);
    } catch (err) {
      this.loggingIn = false;
      setStatus('');
      setError(`Web sign-in failed: ${err.message || err}`);
      return;
    }
    this.startWithToken();
  }

  identityFromToken(token) {
    const claims = tokenClaims(token.access_token);
    const impus = Array.isArray(claims.impu) ? claims.impu : [];
    const sip = impus.find((u) => /^sips?:/i.test(u));
    const tel = impus.find((u) => /^tel:/i.test(u));
    let impu = sip || (tel ? `sip:${tel.slice(4)}@${this.config.ims_domain};user=phone` : null);
    if (!impu) impu = `sip:${claims.sub || 'wic'}@${this.config.ims_domain}`;
    return { impu, sub: claims.sub || '' };
  }

  startWithToken() {
    const { impu, sub } = this.identityFromToken(this.token);
    document.body.dataset.token = 'present';
    setStatus(`Signed in${sub ? ` as ${sub}` : ''}; registering ${impu}…`);
    this.scheduleTokenRefresh();
    this.loggingIn = true;
    this.phone.start({ mode: 'web-token', impu, token: this.token.access_token });
  }

  scheduleTokenRefresh() {
    if (this.tokenTimer) clearTimeout(this.tokenTimer);
    if (!this.token || !this.token.refresh_token) return;
    const delay = Math.max(5000, this.token.expires_at - Date.now() - 60 * 1000);
    this.tokenTimer = setTimeout(() => {
      this.renewToken().then((t) => { if (t) this.phone.updateToken(t); }).catch(() => {});
    }, delay);
  }

  async renewToken() {
    if (!this.token || !this.token.refresh_token || !this.config.auth) return null;
    try {
      this.token = await refreshToken(this.config.auth, this.token);
      log('access token renewed');
      this.scheduleTokenRefresh();
      return this.token.access_token;
    } catch (err) {
      setError(`Session expired: ${err.message || err}. Sign in again.`);
      return null;
    }
  }

  static identities(impuInput, impiInput) {
    let impu = impuInput.value.trim();
    if (impu && !/^sips?:/i.test(impu)) impu = `sip:${impu}`;
    if (!/^sips?:[^@\s]+@[^@\s]+$/i.test(impu)) {
      invalid(impuInput, 'Enter the public identity as sip:user@domain');
      return null;
    }
    const impi = impiInput.value.trim() || impu.replace(/^sips?:/i, '');
    return { impu, impi };
  }

  submitDigest(ev) {
    ev.preventDefault();
    setError('');
    const ids = App.identities($('digest-impu'), $('digest-impi'));
    if (!ids) return;
    const password = $('digest-password').value;
    if (!password) { invalid($('digest-password'), 'Enter the password'); return; }
    setStatus(`Registering ${ids.impu}…`);
    this.loggingIn = true;
    this.phone.start({ mode: 'ims-digest', ...ids, password });
  }

  async submitAka(ev) {
    ev.preventDefault();
    setError('');
    const ids = App.identities($('aka-impu'), $('aka-impi'));
    if (!ids) return;
    const hex = /^[0-9a-fA-F]{32}$/;
    const k = $('aka-k').value.replace(/\s+/g, '');
    const opc = $('aka-opc').value.replace(/\s+/g, '');
    if (!hex.test(k)) { invalid($('aka-k'), 'K must be 32 hexadecimal digits'); return; }
    if (!hex.test(opc)) { invalid($('aka-opc'), 'OPc must be 32 hexadecimal digits'); return; }
    let usim;
    try {
      usim = await SoftUsim.create(k, opc, loadSqnState(ids.impi));
    } catch (err) {
      setError(`Cannot load the USIM keys: ${err.message || err}`);
      return;
    }
    setStatus(`Registering ${ids.impu} with IMS AKA…`);
    this.loggingIn = true;
    this.phone.start({ mode: 'ims-aka', ...ids, usim });
  }

  async logout() {
    const { phone } = this;
    phone.stop();
    this.loggingIn = false;
    if (this.tokenTimer) clearTimeout(this.tokenTimer);
    if (this.token && this.config.auth) await revokeToken(this.config.auth, this.token);
    this.token = null;
    delete document.body.dataset.token;
    clearToken();
    for (const id of ['digest-password', 'aka-k', 'aka-opc']) $(id).value = '';
    setError('');
    setStatus('Logged out');
    this.render();
    const tab = document.querySelector('[role="tab"][aria-selected="true"]');
    if (tab) tab.focus();
  }

  // ------------------------------------------------------------ controls

  pressKey(key) {
    const { phone } = this;
    if (phone.call === CALL.ACTIVE) {
      phone.sendDtmf(key, $('dtmf-method').value);
      return;
    }
    if (phone.call !== CALL.NONE) return;
    const target = $('target');
    target.value += key;
  }

  bindControls() {
    const { phone } = this;
    $('web-login').addEventListener('click', async () => {
      setError('');
      setStatus('Going to the sign-in page…');
      try {
        await startLogin(this.config.auth);
      } catch (err) {
        setError(`Cannot start the web sign-in: ${err.message || err}`);
      }
    });
    $('panel-ims-digest').addEventListener('submit', (ev) => this.submitDigest(ev));
    $('panel-ims-aka').addEventListener('submit', (ev) => this.submitAka(ev));
    $('logout').addEventListener('click', () => this.logout());
    $('dial-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      setError('');
      phone.placeCall($('target').value);
    });
    $('dialpad').addEventListener('click', (ev) => {
      const button = ev.target.closest('button[data-key]');
      if (button) this.pressKey(button.dataset.key);
    });
    $('backspace').addEventListener('click', () => {
      const target = $('target');
      target.value = target.value.slice(0, -1);
      target.focus();
    });
    $('answer').addEventListener('click', () => phone.answer());
    $('reject').addEventListener('click', () => phone.reject());
    $('hangup').addEventListener('click', () => phone.hangup());
    $('mute').addEventListener('click', () => phone.toggleMute());
    $('hold').addEventListener('click', () => phone.toggleHold());
    document.addEventListener('keydown', (ev) => {
      if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const typing = ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement;
      if (phone.call === CALL.ACTIVE && !typing && /^[0-9*#]$/.test(ev.key)) {
        ev.preventDefault();
        this.pressKey(ev.key);
      }
    });
    // a page hidden for long may have missed the expiry of its token: check on return
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && this.token && this.token.expires_at - Date.now() < 60000) {
        this.renewToken().then((t) => { if (t) phone.updateToken(t); });
      }
    });
    window.addEventListener('beforeunload', () => { if (phone.ua) phone.stop(); });
  }
}

const app = new App();
window.webimsWic = app; // for the browser tests and the console
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', () => app.boot());
else app.boot();
