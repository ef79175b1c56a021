/**
 * A value kept in a private field of an object made elsewhere (a socket, a request), where a WeakMap would
 * otherwise hold it.
 *
 * A request-scoped WeakMap entry is the dearest thing a hop helper did per request: an insert into the map's
 * hash table for every request and, since the key dies young, ephemeron work in every scavenge (about 0.5 µs a
 * request in the fastify bench's profile, more than the kept verdict's whole check). A private field is a
 * property of the object itself: set and read through V8's inline caches, collected with the object, and, like a
 * WeakMap entry, invisible to every other piece of code (no `Object.getOwnPropertySymbols`, no spread or
 * `Object.assign` copies it, nothing outside this module can name it), so an application cannot forge a mark
 * on an object nor read one off it.
 *
 * The field is put on the foreign object by a base class whose constructor returns its argument: `super(target)`
 * then makes `target` the `this` the subclass's field initializers run on (ECMAScript's "return override"),
 * which is the one way to give an object a private field after it was made.
 */

/** Makes `target` the instance its subclass's fields are set on. */
class Carrier {
  constructor(target: object) {
    return target as Carrier;
  }
}

/** A slot of type T: `set` marks an object, `get` reads its value back (undefined for one never marked). */
export interface ObjectSlot<T> {
  get(target: object): T | undefined;
  set(target: object, value: T): void;
}

/** A new slot, its own private name: two slots never see each other's values. */
export function objectSlot<T>(): ObjectSlot<T> {
  class Slot extends Carrier {
    #value: T;
    constructor(target: object, value: T) {
      super(target);
      this.#value = value;
    }
    static get(target: object): T | undefined {
      return #value in target ? (target as Slot).#value : undefined;
    }
    static set(target: object, value: T): void {
      if (#value in target) (target as Slot).#value = value;
      else new Slot(target, value);
    }
  }
  return { get: Slot.get, set: Slot.set };
}
