import assert from 'node:assert/strict';
import { ErrorCode, InvalidSpiffeIdError, InvalidTrustDomainError } from '../../src/errors';
import { SpiffeIdRule, type SpiffeIdRuleMessage } from '../../src/spiffe';

/** Assert that `fn` throws InvalidSpiffeIdError (ERR_INVALID_SPIFFE_ID) whose message names `rule`. */
export function assertIdRule(fn: () => unknown, rule: SpiffeIdRuleMessage): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InvalidSpiffeIdError, `expected InvalidSpiffeIdError, got ${String(e)}`);
    assert.equal(e.code, ErrorCode.INVALID_SPIFFE_ID);
    assert.ok(e.message.endsWith(`: ${rule}`), `expected rule "${rule}" in "${e.message}"`);
    assert.ok(e.rule !== undefined, 'expected a rule field');
    assert.equal(SpiffeIdRule[e.rule], rule, `rule field ${e.rule} does not name "${rule}"`);
    return true;
  });
}

/**
 * Assert that `fn` throws InvalidTrustDomainError (ERR_INVALID_TRUST_DOMAIN), which is also an
 * InvalidSpiffeIdError, whose message and `rule` field name `rule`.
 */
export function assertTrustDomainRule(fn: () => unknown, rule: SpiffeIdRuleMessage): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InvalidTrustDomainError, `expected InvalidTrustDomainError, got ${String(e)}`);
    assert.ok(e instanceof InvalidSpiffeIdError, 'InvalidTrustDomainError must be an InvalidSpiffeIdError');
    assert.equal(e.code, ErrorCode.INVALID_TRUST_DOMAIN);
    assert.ok(e.message.endsWith(`: ${rule}`), `expected rule "${rule}" in "${e.message}"`);
    assert.ok(e.rule !== undefined, 'expected a rule field');
    assert.equal(SpiffeIdRule[e.rule], rule, `rule field ${e.rule} does not name "${rule}"`);
    return true;
  });
}
