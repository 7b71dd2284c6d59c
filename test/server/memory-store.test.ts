import { MemoryStore } from '../../src/server/memory-store.js';
import { storeContract } from './store-contract.js';

storeContract('MemoryStore', async () => new MemoryStore());
