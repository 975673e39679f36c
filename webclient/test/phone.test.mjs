// describeFailure: the status line a user sees, with RFC 3326 Reason / Warning texts once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeFailure } from '../src/phone.js';

function response(status, phrase, headers) {
  return { status_code: status, reason_phrase: phrase, getHeader: (name) => headers[name] };
}

test('a Reason text that repeats the phrase is not shown twice', () => {
  const r = response(486, 'Busy Here', { Reason: 'SIP;cause=486;text="Busy Here"' });
  assert.equal(describeFailure(r), '486 Busy Here');
});

test('a Reason or Warning text that adds something is shown', () => {
  const r = response(403, 'Forbidden', {
    Reason: 'SIP;cause=403;text="destination not allowed"',
    Warning: '399 gw.ims.test "scope call missing"',
  });
  assert.equal(describeFailure(r), '403 Forbidden (destination not allowed) (scope call missing)');
});

test('no response: the cause', () => {
  assert.equal(describeFailure(null, 'Connection Error'), 'Connection Error');
});
