// The WIC's telephone: a JsSIP user agent (SIP over WebSocket, RFC 7118) with the
// registration modes of DESIGN.md §2 that a browser performs itself:
//   web-token  - Authorization: Bearer <token> on REGISTER (RFC 8898; JsSIP authorization_jwt)
//   ims-digest - the WIC answers the IMS digest challenge (JsSIP's password authentication)
//   ims-aka    - the WIC's software USIM answers the AKA challenge (RFC 3310; see aka.js)
// and one call at a time: call, answer, reject, hang up, mute, hold, DTMF (RFC 4733 or INFO).
//
// Emits 'change' (state changed), 'notice' ({text, level}), 'dtmf' ({tone, originator})
// and 'callended' ({peer, text, durationMs}).

import { akaVersion, answerAkaChallenge, initialAuthorization, SqnState } from './aka.js';

const MAX_AKA_ROUNDS = 3; // challenge, (resync) challenge, answer: then give up
const ICE_WAIT_MS = 2000;

export const REG = Object.freeze({
  IDLE: 'idle', CONNECTING: 'connecting', REGISTERING: 'registering', REGISTERED: 'registered', FAILED: 'failed',
});
export const CALL = Object.freeze({
  NONE: 'none', OUTGOING: 'outgoing', RINGING: 'ringing', INCOMING: 'incoming', ACTIVE: 'active', HELD: 'held',
});

/** "486 Busy Here" (with the RFC 3326 Reason text when there is one) or JsSIP's cause. */
export function describeFailure(message, cause) {
  if (message && message.status_code) {
    const phrase = (message.reason_phrase || '').trim();
    let text = `${message.status_code} ${phrase}`.trim();
    const seen = new Set([phrase.toLowerCase()]);
    const add = (detail) => {
      // RFC 3326 Reason and RFC 3261 Warning texts, each once, and not when they only
      // repeat the reason phrase ("486 Busy Here", not "486 Busy Here (Busy Here)")
      if (detail && !seen.has(detail.trim().toLowerCase())) {
        seen.add(detail.trim().toLowerCase());
        text += ` (${detail.trim()})`;
      }
    };
    const reason = message.getHeader && message.getHeader('Reason');
    const extra = reason && /text="([^"]*)"/.exec(reason);
    add(extra && extra[1]);
    const warning = message.getHeader && message.getHeader('Warning');
    const warnText = warning && /"([^"]*)"/.exec(warning);
    add(warnText && warnText[1]);
    return text;
  }
  return cause || 'unknown error';
}

function rawAlgorithm(headerValue) {
  const match = /algorithm\s*=\s*"?([^",\s]+)/i.exec(headerValue || '');
  return match ? match[1] : null;
}

function sqnKey(impi) { return `wic.usim.sqn.${impi}`; }

export function loadSqnState(impi) {
  try {
    return new SqnState(JSON.parse(localStorage.getItem(sqnKey(impi)) || 'null'));
  } catch {
    return new SqnState();
  }
}

function saveSqnState(impi, state) {
  try { localStorage.setItem(sqnKey(impi), JSON.stringify(state.seq)); } catch { /* private mode */ }
}

function instanceId() {
  // RFC 5626 §4.1 +sip.instance: one stable UUID per browser profile.
  let id = null;
  try { id = localStorage.getItem('wic.instance'); } catch { /* ignore */ }
  if (!id) {
    id = crypto.randomUUID();
    try { localStorage.setItem('wic.instance', id); } catch { /* ignore */ }
  }
  return id;
}

export class Phone extends EventTarget {
  constructor(JsSIP, config, audioElement) {
    super();
    this.JsSIP = JsSIP;
    this.config = config;
    this.audio = audioElement;
    this.ua = null;
    this.reg = REG.IDLE;
    this.call = CALL.NONE;
    this.session = null;
    this.peer = '';
    this.muted = false;
    this.held = false;
    this.mode = null;
    this.identity = null;
    this.akaRounds = 0;
    this.everConnected = false;
    this.iceServers = config.ice_servers || [];
    this.iceRefresher = null;
  }

  notice(text, level = 'info') {
    this.dispatchEvent(new CustomEvent('notice', { detail: { text, level } }));
  }

  set(changes) {
    Object.assign(this, changes);
    this.dispatchEvent(new CustomEvent('change'));
  }

  /**
   * Start the UA and register.  ``login``: {mode, impu, impi, password, token, usim, displayName}.
   */
  start(login) {
    this.stop();
    const { JsSIP, config } = this;
    this.mode = login.mode;
    this.identity = login;
    this.akaRounds = 0;
    this.everConnected = false;
    const socket = new JsSIP.WebSocketInterface(config.wss_url);
    const options = {
      sockets: [socket],
      uri: login.impu,
      registrar_server: config.registrar,
      register: true,
      register_expires: config.register_expires || 600,
      instance_id: instanceId(),
      user_agent: 'webims-wic/0.1 (JsSIP)',
      session_timers: false,
      display_name: login.displayName || undefined,
      connection_recovery_min_interval: 2,
      connection_recovery_max_interval: 30,
    };
    if (login.mode === 'web-token') {
      options.authorization_jwt = `Bearer ${login.token}`;
    } else if (login.mode === 'ims-digest') {
      options.authorization_user = login.impi;
      options.password = login.password;
    } else if (login.mode === 'ims-aka') {
      options.authorization_user = login.impi;
    }
    let ua;
    try {
      ua = new JsSIP.UA(options);
    } catch (err) {
      this.set({ reg: REG.FAILED });
      this.notice(`Cannot start: ${err.message || err}`, 'error');
      return;
    }
    this.ua = ua;
    if (login.mode === 'ims-aka') {
      ua.registrator().setExtraHeaders([`Authorization: ${initialAuthorization(login.impi, config.ims_domain)}`]);
    }
    ua.on('connecting', () => { if (this.reg !== REG.REGISTERED) this.set({ reg: REG.CONNECTING }); });
    ua.on('connected', () => {
      this.everConnected = true;
      if (this.reg !== REG.REGISTERED) this.set({ reg: REG.REGISTERING });
    });
    ua.on('disconnected', (e) => {
      if (this.ua !== ua) return;
      const wasRegistered = this.reg === REG.REGISTERED;
      const code = e && e.code ? ` (code ${e.code})` : '';
      if (!this.everConnected) {
        this.notice(`Cannot connect to ${config.wss_url}${code}. Retrying…`, 'error');
      } else if (wasRegistered) {
        this.notice(`Connection to the server lost${code}; reconnecting…`, 'error');
      }
      this.set({ reg: REG.CONNECTING });
    });
    ua.on('registered', (e) => {
      if (this.mode === 'ims-aka') {
        this.akaRounds = 0;
        ua.registrator().setExtraHeaders([]);
        if (login.usim) saveSqnState(login.impi, login.usim.sqnState);
      }
      // P-Associated-URI (RFC 7315 §4.1): the IMPUs the network associates (e.g. a pool's)
      const associated = e.response && e.response.getHeader('P-Associated-URI');
      const first = associated && associated.split(',')[0].trim().replace(/^<|>$/g, '');
      this.set({ reg: REG.REGISTERED });
      const other = first && first !== login.impu ? ` (network identity ${first})` : '';
      this.notice(`Registered as ${login.impu}${other}`);
    });
    ua.on('unregistered', () => {
      if (this.ua === ua && this.reg === REG.REGISTERED) this.set({ reg: REG.REGISTERING });
    });
    ua.on('registrationFailed', (e) => this.onRegistrationFailed(ua, e));
    ua.on('newRTCSession', (e) => this.onNewSession(e));
    this.set({ reg: REG.CONNECTING });
    ua.start();
  }

  async onRegistrationFailed(ua, e) {
    if (this.ua !== ua) return;
    const response = e.response;
    if (!response) { // transport error or timeout: JsSIP reconnects and registers again
      this.notice(`Registration failed: ${e.cause}; retrying`, 'error');
      this.set({ reg: REG.CONNECTING });
      return;
    }
    if (this.mode === 'ims-aka' && response.status_code === 401 && this.akaRounds < MAX_AKA_ROUNDS) {
      if (await this.answerAka(ua, response)) return;
    }
    if (this.mode === 'web-token' && response.status_code === 401 && this.tokenRefresher) {
      const renewed = await this.tokenRefresher().catch(() => null);
      if (renewed && this.ua === ua) {
        this.updateToken(renewed);
        ua.register();
        return;
      }
    }
    this.ua = null;
    this.set({ reg: REG.FAILED });
    this.notice(`Registration failed: ${describeFailure(response, e.cause)}`, 'error');
    try { ua.stop(); } catch { /* already stopped */ }
  }

  async answerAka(ua, response) {
    const values = response.getHeaders('www-authenticate');
    const index = values.findIndex((v) => akaVersion(rawAlgorithm(v)) !== null);
    if (index < 0) return false;
    const challenge = response.parseHeader('www-authenticate', index);
    if (!challenge) return false;
    challenge.algorithm = rawAlgorithm(values[index]); // JsSIP upper-cases it
    this.akaRounds += 1;
    const login = this.identity;
    let answer;
    try {
      answer = await answerAkaChallenge({
        challenge, usim: login.usim, username: login.impi, method: 'REGISTER', uri: this.config.registrar,
      });
    } catch (err) {
      this.notice(`Cannot answer the AKA challenge: ${err.message || err}`, 'error');
      return false;
    }
    if (this.ua !== ua) return true;
    if (answer.outcome === 'mac') {
      this.notice('The network failed authentication (MAC mismatch): check K and OPc', 'error');
    } else if (answer.outcome === 'sync') {
      this.notice('USIM sequence number out of step: resynchronising with the network');
    }
    ua.registrator().setExtraHeaders([`Authorization: ${answer.header}`]);
    if (answer.outcome === 'mac') this.akaRounds = MAX_AKA_ROUNDS; // one report, then stop
    ua.register();
    return true;
  }

  updateToken(token) {
    if (this.ua && this.mode === 'web-token') this.ua.set('authorization_jwt', `Bearer ${token}`);
  }

  stop() {
    const { ua } = this;
    this.ua = null;
    if (this.session) {
      try { this.session.terminate(); } catch { /* already ended */ }
      this.endSession('');
    }
    if (ua) {
      try { ua.stop(); } catch { /* already stopped */ }
    }
    if (this.reg !== REG.IDLE) this.set({ reg: REG.IDLE });
  }

  // ---------------------------------------------------------------- calls

  normalizeTarget(text) {
    let target = String(text || '').trim();
    if (!target) return null;
    const domain = this.config.ims_domain;
    if (/^tel:/i.test(target)) target = target.slice(4);
    if (/^sips?:/i.test(target)) return target;
    if (/^[+]?[0-9*#\-.() ]+$/.test(target)) {
      const digits = target.replace(/[\-.() ]/g, '').replace(/#/g, '%23');
      return `sip:${digits}@${domain};user=phone`;
    }
    if (target.includes('@')) return `sip:${target}`;
    return `sip:${target}@${domain}`;
  }

  pcConfig() {
    return { iceServers: this.iceServers, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' };
  }

  async placeCall(text) {
    if (this.reg !== REG.REGISTERED) { this.notice('Not registered yet', 'error'); return; }
    if (this.session) { this.notice('Already in a call', 'error'); return; }
    const target = this.normalizeTarget(text);
    if (!target) { this.notice('Enter a number or a SIP address to call', 'error'); return; }
    if (this.iceRefresher) await this.iceRefresher();
    try {
      this.ua.call(target, {
        mediaConstraints: { audio: true, video: false },
        pcConfig: this.pcConfig(),
        rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
      });
    } catch (err) {
      this.notice(`Cannot call ${text}: ${err.message || err}`, 'error');
    }
  }

  onNewSession(e) {
    const { session } = e;
    if (this.session) { // one call at a time
      if (e.originator === 'remote') session.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
      return;
    }
    const incoming = e.originator === 'remote';
    const peer = session.remote_identity
      ? (session.remote_identity.display_name || session.remote_identity.uri.toString()) : '';
    this.session = session;
    this.muted = false;
    this.held = false;
    if (session.connection) this.attachMedia(session.connection);
    // Send the offer/answer at most ICE_WAIT_MS after the first candidate, even if
    // gathering goes on (a slow STUN/TURN server must not hold the call up).
    let iceWait = null;
    session.on('icecandidate', (ev) => {
      if (!iceWait) iceWait = setTimeout(ev.ready, ICE_WAIT_MS);
    });
    const clearIceWait = () => { if (iceWait) clearTimeout(iceWait); };
    session.on('sdp', (ev) => { if (ev.originator === 'local') clearIceWait(); });
    session.on('peerconnection', (ev) => this.attachMedia(ev.peerconnection));
    session.on('progress', (ev) => {
      if (!incoming) {
        const code = ev.response && ev.response.status_code;
        this.set({ call: CALL.RINGING });
        if (code) this.notice(`${peer}: ${code} ${ev.response.reason_phrase || ''}`.trim());
      }
    });
    session.on('accepted', () => {
      this.set({ call: CALL.ACTIVE, startedAt: Date.now() });
      this.notice(`Connected to ${peer}`);
    });
    session.on('confirmed', () => {
      if (this.call !== CALL.ACTIVE) this.set({ call: CALL.ACTIVE, startedAt: this.startedAt || Date.now() });
    });
    session.on('hold', (ev) => {
      if (ev.originator === 'local') {
        this.set({ held: true, call: CALL.HELD });
        this.notice(`Call with ${peer} on hold`);
      } else {
        this.notice(`${peer} put the call on hold`);
      }
    });
    session.on('unhold', (ev) => {
      if (ev.originator === 'local') {
        this.set({ held: false, call: CALL.ACTIVE });
        this.notice(`Call with ${peer} resumed`);
      } else {
        this.notice(`${peer} resumed the call`);
      }
    });
    session.on('muted', () => this.set({ muted: true }));
    session.on('unmuted', () => this.set({ muted: false }));
    session.on('newDTMF', (ev) => {
      if (ev.originator === 'remote') {
        this.dispatchEvent(new CustomEvent('dtmf', { detail: { tone: ev.dtmf.tone, originator: 'remote' } }));
      }
    });
    session.on('ended', (ev) => {
      const who = ev.originator === 'remote' ? `${peer} hung up` : 'Call ended';
      this.endSession(ev.originator === 'remote' ? who : `${who}${ev.cause && ev.cause !== 'Terminated' ? `: ${ev.cause}` : ''}`);
    });
    session.on('failed', (ev) => {
      const why = describeFailure(ev.message, ev.cause);
      const canceledByUs = ev.originator === 'local' && ev.cause === this.JsSIP.C.causes.CANCELED;
      const rejectedByUs = incoming && ev.originator === 'local';
      const missed = incoming && ev.originator === 'remote' && ev.cause === this.JsSIP.C.causes.CANCELED;
      let text = `Call failed: ${why}`;
      if (canceledByUs) text = 'Call cancelled';
      else if (rejectedByUs) text = 'Call declined';
      else if (missed) text = `Missed call from ${peer}`;
      this.endSession(text, canceledByUs || rejectedByUs || missed ? 'info' : 'error');
    });
    this.set({ call: incoming ? CALL.INCOMING : CALL.OUTGOING, peer, startedAt: null });
    if (incoming) this.notice(`Incoming call from ${peer}`);
    else this.notice(`Calling ${peer}…`);
  }

  attachMedia(pc) {
    if (!pc || pc.webimsAttached) return;
    pc.webimsAttached = true;
    pc.addEventListener('track', (ev) => {
      if (ev.track.kind !== 'audio' || !this.audio) return;
      this.audio.srcObject = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
      const played = this.audio.play();
      if (played && played.catch) played.catch(() => this.notice('Click anywhere to enable the audio', 'error'));
    });
  }

  endSession(text, level = 'info') {
    const { peer, startedAt } = this;
    this.session = null;
    this.dispatchEvent(new CustomEvent('callended', {
      detail: { peer, text, durationMs: startedAt ? Date.now() - startedAt : 0 },
    }));
    if (this.audio) this.audio.srcObject = null;
    this.set({ call: CALL.NONE, peer: '', muted: false, held: false, startedAt: null });
    if (text) this.notice(text, level);
  }

  async answer() {
    if (!this.session || this.call !== CALL.INCOMING) return;
    if (this.iceRefresher) await this.iceRefresher();
    try {
      this.session.answer({ mediaConstraints: { audio: true, video: false }, pcConfig: this.pcConfig() });
    } catch (err) {
      this.notice(`Cannot answer: ${err.message || err}`, 'error');
    }
  }

  reject() {
    if (this.session && this.call === CALL.INCOMING) {
      this.session.terminate({ status_code: 603, reason_phrase: 'Decline' });
    }
  }

  hangup() {
    if (this.session) {
      try { this.session.terminate(); } catch { this.endSession('Call ended'); }
    }
  }

  toggleMute() {
    if (!this.session || (this.call !== CALL.ACTIVE && this.call !== CALL.HELD)) return;
    if (this.muted) this.session.unmute({ audio: true });
    else this.session.mute({ audio: true });
  }

  toggleHold() {
    if (!this.session || (this.call !== CALL.ACTIVE && this.call !== CALL.HELD)) return;
    const ok = this.held ? this.session.unhold() : this.session.hold();
    if (!ok) this.notice('Hold is not possible right now (another offer is pending)', 'error');
  }

  /** DTMF: 'rfc4733' (RTP telephone-event via RTCDTMFSender) or 'info' (SIP INFO). */
  sendDtmf(tone, method) {
    if (!this.session || this.call !== CALL.ACTIVE) return false;
    try {
      this.session.sendDTMF(tone, {
        transportType: method === 'info' ? this.JsSIP.C.DTMF_TRANSPORT.INFO : this.JsSIP.C.DTMF_TRANSPORT.RFC2833,
        duration: 120,
        interToneGap: 80,
      });
    } catch (err) {
      this.notice(`Cannot send DTMF: ${err.message || err}`, 'error');
      return false;
    }
    this.dispatchEvent(new CustomEvent('dtmf', { detail: { tone, originator: 'local' } }));
    return true;
  }

  get connection() {
    return this.session ? this.session.connection : null;
  }
}

