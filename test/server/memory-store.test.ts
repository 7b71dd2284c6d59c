import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/server/memory-store.js';
import { storeContract } from '../../src/server/store-contract.js';

storeContract({ describe, it, beforeEach, afterEach, expect }, 'MemoryStore', async () => new MemoryStore());
