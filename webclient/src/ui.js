// DOM side of the WIC: rendering the phone's state, the status area, the dial pad
// and the keyboard.  No innerHTML anywhere (the page enforces Trusted Types).

import { CALL, REG } from './phone.js';

export const $ = (id) => document.getElementById(id);

const REG_TEXT = {
  [REG.IDLE]: 'Not registered',
  [REG.CONNECTING]: 'Connecting…',
  [REG.REGISTERING]: 'Registering…',
  [REG.REGISTERED]: 'Registered',
  [REG.FAILED]: 'Registration failed',
};

const CALL_TEXT = {
  [CALL.OUTGOING]: 'Calling…',
  [CALL.RINGING]: 'Ringing…',
  [CALL.INCOMING]: 'Incoming call',
  [CALL.ACTIVE]: 'Connected',
  [CALL.HELD]: 'On hold',
};

const CALL_STATE = {
  [CALL.OUTGOING]: 'outgoing',
  [CALL.RINGING]: 'ringing',
  [CALL.INCOMING]: 'incoming',
  [CALL.ACTIVE]: 'in-call',
  [CALL.HELD]: 'on-hold',
};

/** The summary state tests and styles key on: body[data-state]. */
export function pageState(reg, call, loggingIn) {
  if (call !== CALL.NONE) return CALL_STATE[call];
  if (reg === REG.REGISTERED) return 'registered';
  if (reg === REG.CONNECTING || reg === REG.REGISTERING || loggingIn) return 'registering';
  return 'login';
}

export function setStatus(text) {
  const el = $('status');
  el.textContent = text || '';
  log(text);
}

export function setError(text) {
  if (text) $('status').textContent = '';
  const el = $('error');
  el.textContent = text || '';
  el.hidden = !text;
  if (text) log(`error: ${text}`);
}

export function log(text) {
  if (!text) return;
  const list = $('log');
  const item = document.createElement('li');
  const time = new Date().toTimeString().slice(0, 8);
  item.textContent = `${time} ${text}`;
  list.append(item);
  while (list.children.length > 200) list.firstElementChild.remove();
}

function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** Show the phone's state; returns the page state. */
export function render(phone, { loggingIn = false } = {}) {
  const body = document.body;
  const { reg, call } = phone;
  const state = pageState(reg, call, loggingIn);
  body.dataset.reg = reg;
  body.dataset.call = call;
  body.dataset.state = state;
  $('reg-badge').dataset.reg = reg;
  $('reg-text').textContent = REG_TEXT[reg] || reg;
  const signedIn = reg !== REG.IDLE && reg !== REG.FAILED;
  $('login').hidden = signedIn || loggingIn;
  $('workspace').hidden = !signedIn;
  $('logout').hidden = !signedIn && !loggingIn;
  const identity = $('identity');
  identity.hidden = !phone.identity || !signedIn;
  identity.textContent = phone.identity ? phone.identity.impu : '';
  const inCall = call !== CALL.NONE && call !== CALL.INCOMING;
  $('incoming').hidden = call !== CALL.INCOMING;
  $('incoming-from').textContent = call === CALL.INCOMING ? phone.peer : '';
  $('call-panel').hidden = !inCall;
  $('account').hidden = inCall;
  $('call').hidden = inCall;
  $('call').disabled = reg !== REG.REGISTERED || call !== CALL.NONE;
  $('call-peer').textContent = phone.peer || '';
  $('call-state').textContent = CALL_TEXT[call] || '';
  const mute = $('mute');
  mute.setAttribute('aria-pressed', String(!!phone.muted));
  mute.textContent = phone.muted ? 'Unmute' : 'Mute';
  const hold = $('hold');
  hold.setAttribute('aria-pressed', String(!!phone.held));
  hold.textContent = phone.held ? 'Resume' : 'Hold';
  const connected = call === CALL.ACTIVE || call === CALL.HELD;
  mute.disabled = !connected;
  hold.disabled = !connected;
  $('hangup').textContent = connected ? 'Hang up' : 'Cancel';
  $('phone-title').textContent = inCall ? 'Keypad' : 'Phone';
  return state;
}

const MODE_TEXT = {
  'web-token': 'Web account (token)',
  'ims-digest': 'IMS password (digest)',
  'ims-aka': 'Software USIM (IMS AKA)',
};

export function renderAccount(phone, lastCall) {
  $('account-impu').textContent = phone.identity ? phone.identity.impu : '—';
  $('account-mode').textContent = MODE_TEXT[phone.mode] || '—';
  $('account-server').textContent = phone.config.wss_url;
  if (lastCall !== undefined) $('account-last').textContent = lastCall;
}

export function updateTimer(phone) {
  $('call-timer').textContent = phone.startedAt ? formatDuration(Date.now() - phone.startedAt) : '0:00';
}

const fmt = (value, digits, unit) => (value === null || value === undefined ? '—'
  : `${Number(value).toFixed(digits)}${unit}`);

export function renderStats(s) {
  const set = (id, text, value) => {
    const el = $(id);
    el.textContent = text;
    if (value !== undefined && value !== null) el.dataset.value = String(value);
  };
  set('q-codec', s.codec || '—');
  set('q-sent', fmt(s.packetsSent, 0, ''), s.packetsSent);
  set('q-received', fmt(s.packetsReceived, 0, ''), s.packetsReceived);
  set('q-loss', s.lossPercent === null ? '—' : `${s.lossPercent.toFixed(1)} % (${Math.max(0, s.packetsLost)})`,
    s.lossPercent);
  set('q-jitter', fmt(s.jitterMs, 1, ' ms'), s.jitterMs);
  set('q-rtt', fmt(s.rttMs, 0, ' ms'), s.rttMs);
  const meter = $('q-level');
  meter.value = s.inboundLevel || 0;
  if (s.totalAudioEnergy !== null) meter.dataset.energy = String(s.totalAudioEnergy);
}

export function clearStats() {
  for (const id of ['q-codec', 'q-sent', 'q-received', 'q-loss', 'q-jitter', 'q-rtt']) {
    $(id).textContent = '—';
    delete $(id).dataset.value;
  }
  $('q-level').value = 0;
  $('dtmf-sent').textContent = '';
  $('dtmf-received').textContent = '';
}

/** WAI-ARIA tabs with roving tabindex and arrow keys (APG "Tabs" pattern). */
export function setupTabs(modes, onSelect) {
  const tabs = Array.from(document.querySelectorAll('[role="tab"]'));
  const offered = tabs.filter((t) => modes.includes(t.dataset.mode));
  for (const tab of tabs) tab.hidden = !offered.includes(tab);
  const select = (tab, focus) => {
    for (const t of offered) {
      const selected = t === tab;
      t.setAttribute('aria-selected', String(selected));
      t.tabIndex = selected ? 0 : -1;
      $(t.getAttribute('aria-controls')).hidden = !selected;
    }
    if (focus) tab.focus();
    onSelect(tab.dataset.mode);
  };
  for (const tab of offered) {
    tab.addEventListener('click', () => select(tab, false));
    tab.addEventListener('keydown', (ev) => {
      const i = offered.indexOf(tab);
      let next = null;
      if (ev.key === 'ArrowRight') next = offered[(i + 1) % offered.length];
      else if (ev.key === 'ArrowLeft') next = offered[(i - 1 + offered.length) % offered.length];
      else if (ev.key === 'Home') next = offered[0];
      else if (ev.key === 'End') next = offered[offered.length - 1];
      if (next) { ev.preventDefault(); select(next, true); }
    });
  }
  const tablist = document.querySelector('[role="tablist"]');
  tablist.hidden = offered.length < 2;
  if (offered.length) select(offered[0], false);
  return (mode) => { const tab = offered.find((t) => t.dataset.mode === mode); if (tab) select(tab, false); };
}

/** Mark a field invalid (aria-invalid) with its message as the error. */
export function invalid(input, message) {
  input.setAttribute('aria-invalid', 'true');
  input.addEventListener('input', () => input.removeAttribute('aria-invalid'), { once: true });
  setError(message);
  input.focus();
  return false;
}
