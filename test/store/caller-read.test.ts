import { runCallerReadConformance } from './caller-read-conformance';
import { sqliteHarness } from './harnesses';

runCallerReadConformance('sqlite', sqliteHarness, { ordersUnawaitedCalls: true });
