import type { ReceiptRow, ReceiptsRepo } from '../../storage/receipts.js';

type Receipt = Omit<ReceiptRow, 'stream_pos'>;

interface Pending {
  receipt: Receipt;
  then: readonly string[];
  done: (result: { position: number; written: boolean }) => void;
  failed: (err: unknown) => void;
}

/** Receipts per transaction at most. */
const MAX_BATCH = 100;

/**
 * PostgreSQL: the receipts this process writes, one transaction at a time, each with every receipt
 * that arrived while the one before was written, at one global position (ReceiptsRepo.putAllAtNextPosition).
 * A message brings a burst of receipts (each reader's client acknowledges it at once); written one by
 * one, they queued at the global position's lock, each taking it in turn, and a send waited behind
 * them all. Now a burst takes it once or twice.
 */
export class ReceiptBatches {
  private readonly queue: Pending[] = [];
  private writing = false;

  constructor(private readonly repo: ReceiptsRepo) {}

  put(receipt: Receipt, then: readonly string[]): Promise<{ position: number; written: boolean }> {
    return new Promise((done, failed) => {
      this.queue.push({ receipt, then, done, failed });
      if (!this.writing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, MAX_BATCH);
        try {
          const { position, written } = await this.repo.putAllAtNextPosition(batch.map((p) => ({ row: p.receipt, then: p.then })));
          batch.forEach((p, i) => p.done({ position, written: written[i]! }));
        } catch (err) {
          for (const p of batch) p.failed(err);
        }
      }
    } finally {
      this.writing = false;
    }
  }
}
