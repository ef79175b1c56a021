/**
 * objectSlot: the private-field mark the hop helpers put on sockets and requests in place of a WeakMap entry.
 * What peerOf relies on: an object never marked reads undefined, a mark is invisible to reflection and is not
 * copied with the object's own properties, and two slots never see each other's values.
 */
import assert from 'node:assert/strict';
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { objectSlot } from '../../src/hop/object-slot';

describe('hop: objectSlot', () => {
  it('reads back what was set, undefined for an object never marked, the last value after a second set', () => {
    const slot = objectSlot<{ n: number }>();
    const a = {};
    const b = {};
    const first = { n: 1 };
    slot.set(a, first);
    assert.equal(slot.get(a), first);
    assert.equal(slot.get(b), undefined);
    const second = { n: 2 };
    slot.set(a, second);
    assert.equal(slot.get(a), second);
  });

  it('two slots are apart: a mark of one is not a mark of the other', () => {
    const one = objectSlot<string>();
    const other = objectSlot<string>();
    const o = {};
    one.set(o, 'x');
    assert.equal(other.get(o), undefined);
    other.set(o, 'y');
    assert.equal(one.get(o), 'x');
    assert.equal(other.get(o), 'y');
  });

  it('a mark is not a property: no reflection sees it, no copy of the object carries it', () => {
    const slot = objectSlot<string>();
    const req = new IncomingMessage(new Socket());
    const keys = Reflect.ownKeys(req);
    slot.set(req, 'peer');
    assert.deepEqual(Reflect.ownKeys(req), keys);
    assert.equal(JSON.stringify(Object.getOwnPropertyDescriptors(req)).includes('peer'), false);
    for (const copy of [{ ...req }, Object.assign({}, req), Object.create(req) as object]) {
      assert.equal(slot.get(copy), undefined);
    }
  });

  it('marks objects of any class, sockets and requests included', () => {
    const slot = objectSlot<number>();
    const socket = new Socket();
    const req = new IncomingMessage(socket);
    slot.set(socket, 1);
    slot.set(req, 2);
    assert.equal(slot.get(socket), 1);
    assert.equal(slot.get(req), 2);
    socket.destroy();
  });
});
