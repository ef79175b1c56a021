/** The one hand-moved clock of the test kit: stores, CAs, caches and publishers all read it. */

/** The instant every FakeClock starts at unless told otherwise: far from the real clock, so leaks show. */
export const T0 = new Date('2031-03-01T00:00:00Z');

export class FakeClock {
  private at: Date;

  constructor(start: Date = T0) {
    this.at = start;
  }

  /** The current instant (the same Date object until the clock moves). */
  get now(): Date {
    return this.at;
  }

  /** `now` as a function, to hand to code that takes `clock: () => Date`. */
  readonly read = (): Date => this.at;

  set(t: Date): void {
    this.at = t;
  }

  advance(ms: number): void {
    this.at = new Date(this.at.getTime() + ms);
  }
}
