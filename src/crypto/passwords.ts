import argon2 from 'argon2';
import bcrypt from 'bcryptjs';

export interface PasswordHashingOptions {
  algorithm: 'argon2id' | 'bcrypt';
  bcryptRounds: number;
  argon2: { memory_cost: number; time_cost: number; parallelism: number };
  pepper?: string;
}

/**
 * Hashes new passwords with the configured algorithm and verifies both argon2 and bcrypt hashes,
 * so accounts imported from Synapse keep working. argon2 runs on libuv's thread pool and bcryptjs
 * yields between rounds: neither blocks the event loop for long.
 */
export class PasswordHasher {
  private dummyHash: Promise<string> | undefined;

  constructor(private readonly options: PasswordHashingOptions) {}

  private peppered(password: string): string {
    return password + (this.options.pepper ?? '');
  }

  async hash(password: string): Promise<string> {
    if (this.options.algorithm === 'bcrypt') {
      return bcrypt.hash(this.peppered(password), this.options.bcryptRounds);
    }
    const { memory_cost, time_cost, parallelism } = this.options.argon2;
    return argon2.hash(this.peppered(password), {
      type: argon2.argon2id,
      memoryCost: memory_cost,
      timeCost: time_cost,
      parallelism,
    });
  }

  async verify(hash: string | null | undefined, password: string): Promise<boolean> {
    if (!hash) {
      // Spend the same time as a real check, so a missing account cannot be told apart by timing.
      this.dummyHash ??= this.hash('not-a-real-password');
      await this.verify(await this.dummyHash, password);
      return false;
    }
    try {
      if (hash.startsWith('$argon2')) return await argon2.verify(hash, this.peppered(password));
      if (/^\$2[abxy]\$/.test(hash)) return await bcrypt.compare(this.peppered(password), hash);
    } catch {
      return false;
    }
    return false;
  }

  /** True when a stored hash should be replaced by one with the current algorithm and cost. */
  needsRehash(hash: string): boolean {
    if (this.options.algorithm === 'bcrypt') return !hash.startsWith(`$2b$${String(this.options.bcryptRounds).padStart(2, '0')}$`);
    if (!hash.startsWith('$argon2id$')) return true;
    const { memory_cost, time_cost, parallelism } = this.options.argon2;
    return argon2.needsRehash(hash, { memoryCost: memory_cost, timeCost: time_cost, parallelism });
  }
}
