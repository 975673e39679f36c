// Live call quality from RTCPeerConnection.getStats() (W3C webrtc-stats):
// packets sent/received, loss, jitter, round-trip time, audio levels, codec.

/** One summary of a stats report (numbers, or null when not known yet). */
export function summarize(report) {
  const out = {
    codec: null, packetsSent: null, packetsReceived: null, packetsLost: null, lossPercent: null,
    jitterMs: null, rttMs: null, inboundLevel: null, outboundLevel: null, totalAudioEnergy: null,
    bytesReceived: null, bytesSent: null,
  };
  const byId = new Map();
  report.forEach((s) => byId.set(s.id, s));
  report.forEach((s) => {
    if (s.kind && s.kind !== 'audio') return;
    if (s.type === 'inbound-rtp') {
      out.packetsReceived = s.packetsReceived ?? null;
      out.packetsLost = s.packetsLost ?? null;
      out.bytesReceived = s.bytesReceived ?? null;
      out.jitterMs = typeof s.jitter === 'number' ? s.jitter * 1000 : null;
      if (typeof s.audioLevel === 'number') out.inboundLevel = s.audioLevel;
      if (typeof s.totalAudioEnergy === 'number') out.totalAudioEnergy = s.totalAudioEnergy;
      const codec = s.codecId && byId.get(s.codecId);
      if (codec) out.codec = `${codec.mimeType.replace(/^audio\//, '')}/${codec.clockRate}`;
    } else if (s.type === 'outbound-rtp') {
      out.packetsSent = s.packetsSent ?? null;
      out.bytesSent = s.bytesSent ?? null;
      const codec = !out.codec && s.codecId && byId.get(s.codecId);
      if (codec) out.codec = `${codec.mimeType.replace(/^audio\//, '')}/${codec.clockRate}`;
    } else if (s.type === 'remote-inbound-rtp') {
      if (typeof s.roundTripTime === 'number') out.rttMs = s.roundTripTime * 1000;
    } else if (s.type === 'media-source') {
      if (typeof s.audioLevel === 'number') out.outboundLevel = s.audioLevel;
    } else if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
      if (out.rttMs === null && typeof s.currentRoundTripTime === 'number') out.rttMs = s.currentRoundTripTime * 1000;
    }
  });
  if (out.packetsReceived !== null && out.packetsLost !== null) {
    const expected = out.packetsReceived + Math.max(0, out.packetsLost);
    out.lossPercent = expected > 0 ? (100 * Math.max(0, out.packetsLost)) / expected : 0;
  }
  return out;
}

/** Poll ``getConnection()`` every ``intervalMs`` and hand summaries to ``onStats``. */
export class StatsPoller {
  constructor(getConnection, onStats, intervalMs = 1000) {
    this.getConnection = getConnection;
    this.onStats = onStats;
    this.intervalMs = intervalMs;
    this.timer = null;
  }

  start() {
    if (this.timer) return;
    const tick = async () => {
      const pc = this.getConnection();
      if (!pc) return;
      try {
        this.onStats(summarize(await pc.getStats()));
      } catch { /* the connection closed meanwhile */ }
    };
    this.timer = setInterval(tick, this.intervalMs);
    tick();
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
