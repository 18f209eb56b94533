/**
 * A first-in first-out queue with O(1) shift. mqemitter queues the messages
 * it cannot deliver yet (over its concurrency of 100) in an Array and takes
 * them with shift(), which is O(n) on a long array: under fan-in (50
 * publishers) that loop took 60% of the broker's CPU. Only push, shift and
 * length are used there.
 */
export class Fifo<T> {
  #items: Array<T | undefined> = []
  #head = 0

  get length (): number { return this.#items.length - this.#head }

  push (item: T): number {
    this.#items.push(item)
    return this.length
  }

  shift (): T | undefined {
    if (this.#head >= this.#items.length) return undefined
    const item = this.#items[this.#head]
    this.#items[this.#head++] = undefined
    // Reclaim the consumed front now and then: amortized O(1).
    if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
    return item
  }
}
