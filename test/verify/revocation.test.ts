import assert from 'node:assert/strict';
import { RevocationQuery, StaticRevocationList } from '../../src/verify/revocation';

const query = (q: Partial<RevocationQuery> = {}): RevocationQuery => ({
  serialHex: 'abc',
  certSha256Hex: '00'.repeat(32),
  spiffeId: 'spiffe://example.org/a',
  delegationSessionIds: [],
  ...q,
});

describe('StaticRevocationList', () => {
  it('does not revoke anything it was not told about', () => {
    assert.equal(new StaticRevocationList().isRevoked(query({ sessionId: 's', rootSessionId: 'r' })), false);
  });

  it('revokes by serial, comparing serials as numbers (case, leading zeros, colons)', () => {
    const list = new StaticRevocationList({ serials: ['00:AB:C'] });
    assert.deepEqual(list.isRevoked(query({ serialHex: 'abc' })), { kind: 'certificate', id: 'abc' });
    assert.equal(list.isRevoked(query({ serialHex: 'abd' })), false);
  });

  it('scopes a serial to an issuer when one is given', () => {
    const list = new StaticRevocationList().revokeSerial('abc', 'AA'.repeat(32));
    assert.equal(list.isRevoked(query({ issuerSha256Hex: 'bb'.repeat(32) })), false);
    assert.equal(list.isRevoked(query()), false, 'unknown issuer: not the revoked certificate');
    assert.notEqual(list.isRevoked(query({ issuerSha256Hex: 'aa'.repeat(32) })), false);
  });

  it('revokes a session wherever it sits in the chain, and says where', () => {
    const list = new StaticRevocationList().revokeSession('s-root', 'task ended');
    assert.deepEqual(list.isRevoked(query({ sessionId: 's-root', rootSessionId: 's-root' })), {
      kind: 'session',
      id: 's-root',
      relation: 'own',
      detail: 'task ended',
    });
    assert.deepEqual(list.isRevoked(query({ sessionId: 'leaf', rootSessionId: 's-root' })), {
      kind: 'session',
      id: 's-root',
      relation: 'root',
      detail: 'task ended',
    });
    const mid = new StaticRevocationList({ sessions: ['s-mid'] });
    assert.deepEqual(
      mid.isRevoked(
        query({ sessionId: 'leaf', rootSessionId: 's-root', delegationSessionIds: ['s-root', 's-mid'] }),
      ),
      { kind: 'session', id: 's-mid', relation: 'ancestor' },
    );
    assert.equal(
      mid.isRevoked(query({ sessionId: 'leaf', rootSessionId: 's-root', delegationSessionIds: ['s-root'] })),
      false,
    );
  });
});
