// Appended to the SIP.js bundle for the test pages (sipjs_gateway.html, sipjs_call.html):
// what SIP.js wrote on and read from the WebSocket, from its traceSip log, and its
// warnings and errors. The pages pass `connector` as the UserAgent's logConnector.
window.events = [];
window.sent = [];      // every SIP message SIP.js wrote on the WebSocket
window.received = [];  // every SIP message it read from it
function note(name, detail) { window.events.push(detail === undefined ? name : name + ' ' + detail); }

var SENT = 'Sending WebSocket message:\n\n';
var RECEIVED = 'Received WebSocket text message:\n\n';
function connector(level, category, label, content) {
  if (typeof content !== 'string') { return; }
  if (content.indexOf(SENT) === 0) { window.sent.push(content.slice(SENT.length, -1)); }
  else if (content.indexOf(RECEIVED) === 0) { window.received.push(content.slice(RECEIVED.length, -1)); }
  else if (level === 'error' || level === 'warn') { note(level, category + ': ' + content); }
}
