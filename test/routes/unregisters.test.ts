import { describe, expect, it } from 'vitest';
import { routeEndpoints } from '../../src/routes/messages.ts';
import { PendingUnregisters } from '../../src/routes/unregisters.ts';
import { registration, route } from './fixtures.ts';

const [x, y] = routeEndpoints([registration({ routes: [route('x.example.com'), route('y.example.com')] })], { isolationSegment: null }).values();

describe('PendingUnregisters', () => {
  it('re-sends an unregister a bounded number of times, then forgets it', () => {
    const pending = new PendingUnregisters(2);
    pending.add(x);
    expect(pending.due()).toEqual([x]);
    expect(pending.due()).toEqual([x]);
    expect(pending.due()).toEqual([]);
    expect(pending.size).toBe(0);
  });

  it('a register of the same endpoint cancels its remaining unregisters', () => {
    const pending = new PendingUnregisters(2);
    pending.add(x);
    pending.add(y);
    pending.cancel(x.key);
    expect(pending.due()).toEqual([y]);
  });

  it('after a reconnect or at exit, all pending ones are listed without spending their budget', () => {
    const pending = new PendingUnregisters(1);
    pending.add(x);
    expect(pending.all()).toEqual([x]);
    expect(pending.all()).toEqual([x]);
    expect(pending.due()).toEqual([x]);
    expect(pending.all()).toEqual([]);
  });

  it('with no re-sends configured nothing is kept', () => {
    const pending = new PendingUnregisters(0);
    pending.add(x);
    expect(pending.due()).toEqual([]);
  });

  it('removing an endpoint again restarts its budget instead of queueing it twice', () => {
    const pending = new PendingUnregisters(2);
    pending.add(x);
    pending.due();
    pending.add(x);
    expect(pending.due()).toEqual([x]);
    expect(pending.due()).toEqual([x]);
    expect(pending.due()).toEqual([]);
  });
});
