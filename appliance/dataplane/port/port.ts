// One appliance data port. By default it runs through the batched addon (native/batch_port.cc):
// packet sockets of its own that keep the kernel's offload metadata with every frame (a checksum
// still to be completed, a GSO super-frame's segment type and size), JS sees frames a batch at a
// time, and each batch leaves with one sendmmsg() carrying that metadata unchanged, from a send
// thread of the port on boxes with cores to spare. Hosts with their default offloads (TX checksum,
// TSO/GSO) therefore work through the appliance: what a host sent as one super-frame with a partial
// checksum leaves as the same segments with complete checksums.
// When the addon is not built or cannot open the port, `cap` (libpcap) moves the frames one at a
// time. It never sees the metadata, so it cannot be correct with such hosts: it says so when it
// opens (`ioLimitation`) and does not send frames above the MTU on (libpcap cuts them; the decoder
// or the size check in openCap counts them); a partial checksum it cannot detect.
// What we forward out of a port is not received again there: the batched port receives inbound
// frames only (it sends through a socket of its own), and Linux never hands cap's socket the frames
// it sent itself; frames from the port's own MAC are dropped as a second guard.
// Batched ports busy-poll their rings for a while after each frame (BUSY_POLL_MICROS): the event
// loop sleeping between frames was most of the latency the appliance added.
// Frames the kernel dropped before we saw them (the receive ring full: the box too slow) are read
// from the socket's PACKET_STATISTICS by takeKernelDrops(), for either I/O (cap's socket through the
// addon, found by its descriptor), so they can be told from the policy's drops. Must not modify
// the frames it forwards.

import { Cap } from 'cap';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { availableParallelism } from 'node:os';
import { loadBatchPort, type BatchPort, type BatchPortAddon } from './batch-port';
import type { BusyPollStats } from '../../ipc/stats';

/** Frames handled per batch: JS is called once per batch, frames go out in one sendmmsg(). */
export const BATCH_FRAMES = 256;
/** cap's capture buffer: its snaplen is 65535. */
const CAP_FRAME_BYTES = 65536;
/** Room for a frame above the MTU: the Ethernet header and two VLAN tags. */
const FRAME_OVERHEAD = 14 + 2 * 4;
/**
 * The largest super-frame a batched slot holds: the kernel's default GSO limit (gso_max_size 65536;
 * raised only by hand for BIG TCP, whose larger frames would be counted as truncated).
 */
const GSO_MAX_BYTES = 65536;
/**
 * From this many CPUs on, each port sends from its own thread. With fewer, the hand-over (a thread
 * wakeup per batch) cost more than it gave: on 2 cores, 64-byte frames went through at 134-170 kpps
 * with send threads against 267-355 kpps without, TCP the same within noise (bench/README.md).
 */
const SEND_THREAD_MIN_CPUS = 4;
/** Kernel buffer per port (the batched port's ring and socket buffer, cap's ring): absorbs bursts while the event loop is busy. */
const RING_BYTES = 32 * 1024 * 1024;
/**
 * Offloads that merge received frames together, turned off on the ports: LRO loses the segment
 * boundaries, and cap would see GRO's merged frames oversize (the batched port turns GRO back on,
 * see openBatched). Send offloads (checksum, TSO/GSO) stay as the driver has them: the batched port
 * sends super-frames with their metadata, the kernel or NIC segments them on the way out.
 */
const OFFLOADS = ['gro', 'lro'] as const;

/** How a port moves frames: the batched addon, or `cap` one frame per call (the fallback). */
export type PortIo = 'batched' | 'cap';
/** Environment variable that forces an I/O ('cap' for the baseline); the default is batched. */
export const PORT_IO_ENV = 'GATEKEEPER_PORT_IO';
/**
 * Environment variable: how long (µs) the batched ports keep polling their rings after the last
 * frame before the event loop sleeps again (`off`: never polled; 0: looked at once). Default
 * BUSY_POLL_MICROS.
 */
export const BUSY_POLL_ENV = 'GATEKEEPER_BUSY_POLL_US';
/**
 * 20 ms: longer than the gaps of a 100/s ping or a 50 Hz poller, so their frames find the event
 * loop awake and warm. bench:wire on 2 cores, polling against none: added ping round trip p50
 * 3-16 against 147-176 µs; TCP and 64-byte rates within the (large) spread of the runs
 * (native/batch_port.cc and docs/operations.md have the numbers). The price: while frames come at least every 20 ms the
 * dataplane holds a CPU, unless it finds itself preempted (then it sleeps between frames for
 * 100 ms); `off` where idle CPU matters more.
 */
export const BUSY_POLL_MICROS = 20_000;

/**
 * While busy polling finds the rings empty, every 200 µs each port's path runs once on its last
 * frame, deciding nothing (Engine.warm): the host of this 2-core VM evicts a vCPU's caches within
 * 1-5 ms even while it spins, and the first frame after a gap then took 65-120 µs in JS instead of
 * 10-20. Ping every 10 ms through the box, hosts' offloads on, alternating runs: round trip p50
 * 0.115-0.134 ms against 0.178-0.226 without (bench/README.md, "keeping warm"). 50 µs gained no more.
 */
export const WARM_MICROS = 200;

/** What the kernel took (frames, bytes) and refused (frames) since the last report. */
export type SentListener = (frames: number, bytes: number, refused: number) => void;

export interface PortPreparation {
  /** Offloads that could not be turned off (usually fixed off on this driver: harmless). */
  offloadsNotChanged: string[];
  mtu: number;
}

export class Port {
  readonly mac = new Uint8Array(6);
  /**
   * The batch being handled (valid only inside the onBatch callback): frame i is `frames[i]`, its
   * captured length `lengths[2 * i]` and its length on the wire `lengths[2 * i + 1]` (larger when
   * the frame did not fit its slot, or with cap above the MTU), and the number of frames it stands
   * for on the wire `segments[i]`: 1, or for a GSO super-frame the segments it leaves as (its
   * headers, the first segment's, are those in `frames[i]`).
   */
  frames: Buffer[] = [];
  readonly lengths = new Uint32Array(BATCH_FRAMES * 2);
  readonly segments: Uint16Array;
  /**
   * Set by open() when the I/O cannot carry the kernel's offload metadata (cap): hosts with TX
   * checksum offload or TSO/GSO on will not work through it. For the log.
   */
  ioLimitation: string | undefined;
  /** The I/O in use once open. */
  io: PortIo | undefined;
  /** True when the port sends from its own thread (batched I/O on a box with cores to spare). */
  sendThread = false;
  /** Why the batched I/O is not used (addon missing or refused the port); undefined when it is. */
  ioFallbackReason: string | undefined;
  /** Why frames the kernel dropped cannot be counted on this port (cap without the addon); undefined when they are. */
  kernelDropsUncounted: string | undefined;

  /** Receive buffer: the batch's frames in fixed-size slots, each after its vnet header (batched). */
  private rx: Buffer = Buffer.alloc(0);
  private slotBytes = 0;
  /** Batched: frame i starts at `starts[i]` in its slot (earlier when a VLAN tag was restored); `segments` follows. */
  private readonly meta = new Uint16Array(BATCH_FRAMES * 2);
  private readonly starts = this.meta.subarray(0, BATCH_FRAMES);
  /** Batched: the views of every slot for both frame starts; `frames[i]` is one of them per batch. */
  private plainFrames: Buffer[] = [];
  private taggedFrames: Buffer[] = [];
  private plainStart = 0;
  private batchPort: BatchPort | undefined;
  private cap: Cap | undefined;
  /** cap's packet socket and the addon that reads its statistics (-1: not found, not counted). */
  private capFd = -1;
  private capDrops: BatchPortAddon['packetDrops'] | undefined;
  /** Frames queued for sending: (offset, length) pairs into `txSource`'s receive buffer. */
  private readonly tx = new Uint32Array(BATCH_FRAMES * 2);
  /** The same frames as views, for cap, which sends from the start of a buffer. */
  private readonly txViews: Buffer[] = [];
  private txCount = 0;
  private txBytes = 0;
  private txSource: Port | undefined;
  /** Set by open(). */
  private onSent: SentListener = () => {};
  /** One (offset 0, length) pair for frames sent on their own (rejects). */
  private readonly single = new Uint32Array(2);

  constructor(readonly name: string) {
    this.segments = this.meta.subarray(BATCH_FRAMES, 2 * BATCH_FRAMES);
  }

  /**
   * Refuse a port that cannot be a transparent data port, then silence the kernel on it. The one
   * master a port may have is the pair's own bypass bridge (`bypassBridge`, dataplane/failsafe/).
   */
  prepare(bypassBridge?: string): PortPreparation {
    const sys = `/sys/class/net/${this.name}`;
    if (!existsSync(sys)) throw new Error(`interface ${this.name} does not exist`);
    if (existsSync(`${sys}/master`) && basename(realpathSync(`${sys}/master`)) !== bypassBridge) {
      throw new Error(`interface ${this.name} is enslaved to a bridge or bond; the gatekeeper must own it alone`);
    }
    // No addresses, no ARP, no IPv6 autoconfiguration: the appliance must never speak on a data port.
    run('ip', ['addr', 'flush', 'dev', this.name]);
    const ipv6 = `/proc/sys/net/ipv6/conf/${this.name}/disable_ipv6`;
    if (existsSync(ipv6)) writeFileSync(ipv6, '1');
    run('ip', ['link', 'set', 'dev', this.name, 'arp', 'off', 'promisc', 'on', 'up']);
    const offloadsNotChanged: string[] = [];
    for (const feature of OFFLOADS) {
      try {
        run('ethtool', ['-K', this.name, feature, 'off']);
      } catch {
        offloadsNotChanged.push(feature);
      }
    }
    const mac = readFileSync(`${sys}/address`, 'utf8').trim().split(':');
    for (let i = 0; i < 6; i++) this.mac[i] = parseInt(mac[i], 16);
    return { offloadsNotChanged, mtu: this.mtu() };
  }

  /**
   * Start capturing; `onBatch(count)` is called for each batch of received frames (see `frames`).
   * While the batched ports busy-poll, an idle stretch of WARM_MICROS brings `onBatch(0)`: no new
   * frame, `frames[0]` and `lengths` still those of the last batch, for a pass that changes nothing.
   * Frames queued with `queue()` during the callback must be flushed with `flush()` before it
   * returns; `onSent` reports what the kernel did with them (batched: on the next loop turn).
   * `io` defaults to $GATEKEEPER_PORT_IO, else batched; batched falls back to cap when it cannot open.
   * `sendThread` (batched only) defaults to whether the box has SEND_THREAD_MIN_CPUS CPUs.
   */
  open(onBatch: (count: number) => void, onSent: SentListener, io: PortIo = defaultIo(),
    sendThread = availableParallelism() >= SEND_THREAD_MIN_CPUS): void {
    if (this.io !== undefined) throw new Error(`port ${this.name} is already open`);
    this.onSent = onSent;
    if (io === 'batched') {
      const busyPoll = busyPollMicros(); // a bad setting is an error, not a reason to fall back
      const loaded = loadBatchPort();
      if (typeof loaded === 'string') {
        this.ioFallbackReason = loaded;
      } else {
        try {
          this.openBatched(loaded, onBatch, sendThread, busyPoll);
          return;
        } catch (err) {
          this.ioFallbackReason = (err as Error).message;
        }
      }
    }
    try {
      this.openCap(onBatch);
    } catch (err) {
      const batched = this.ioFallbackReason === undefined ? '' : ` (batched I/O: ${this.ioFallbackReason})`;
      throw new Error(`cannot open port ${this.name}: ${(err as Error).message}${batched}`);
    }
  }

  private openBatched(loaded: BatchPortAddon, onBatch: (count: number) => void, sendThread: boolean, busyPoll: number): void {
    const batchPort = new loaded.BatchPort();
    // GRO on: the port merges a flow's MTU-sized segments into super-frames before we see them (as
    // a kernel bridge's ports do), decided once and cut back into the same segments on the way out.
    // Hosts with offloads off, A/B on 2 cores: TCP 1.5-2.1 Gbit/s against 0.5-0.9, dataplane CPU
    // per Mbit/s 0.26-0.29x (bench/README.md). Where the driver cannot, frames come one by one.
    // Off again on veth once the kernel fast path runs (steerForFastPath).
    this.mergeReceived();
    // A slot holds the vnet header and the largest frame the port can receive: a GSO super-frame,
    // or an MTU-sized frame with two tags; larger ones are truncated. Slots are mostly untouched
    // beyond their first bytes: 16 MiB of address space per port, paged in as frames need it.
    this.plainStart = loaded.frameStart;
    const taggedStart = loaded.taggedFrameStart;
    this.slotBytes = Math.ceil((this.plainStart + Math.max(this.mtu() + FRAME_OVERHEAD, GSO_MAX_BYTES + 4)) / 64) * 64;
    this.rx = Buffer.allocUnsafeSlow(this.slotBytes * BATCH_FRAMES);
    const slot = (i: number, start: number) => this.rx.subarray(i * this.slotBytes + start, (i + 1) * this.slotBytes);
    this.plainFrames = Array.from({ length: BATCH_FRAMES }, (_, i) => slot(i, this.plainStart));
    this.taggedFrames = Array.from({ length: BATCH_FRAMES }, (_, i) => slot(i, taggedStart));
    this.frames = this.plainFrames.slice();
    const frames = this.frames;
    const starts = this.starts;
    const onFrames = (count: number): void => {
      for (let i = 0; i < count; i++) frames[i] = starts[i] === this.plainStart ? this.plainFrames[i] : this.taggedFrames[i];
      onBatch(count);
    };
    const sendBatchBytes = Math.max(2 * GSO_MAX_BYTES, this.slotBytes * 16);
    batchPort.open(this.name, RING_BYTES, this.rx, this.lengths, this.meta, this.slotBytes, sendBatchBytes, onFrames,
      this.onSent, sendThread, busyPoll, WARM_MICROS);
    this.batchPort = batchPort;
    this.io = 'batched';
    this.sendThread = sendThread;
  }

  private openCap(onBatch: (count: number) => void): void {
    this.slotBytes = CAP_FRAME_BYTES;
    this.rx = Buffer.alloc(CAP_FRAME_BYTES);
    this.frames = [this.rx];
    this.segments[0] = 1;
    // While a port has segmentation offloads on, libpcap sizes its ring's frames for 64 KiB: the
    // 32 MiB ring then held about 500 frames of a burst (test/port-io.test.ts), and 64-byte frames
    // were lost even at 1 kpps on a loaded box (bench/README.md). cap only sends plain frames, so
    // they go off. libpcap then cuts a larger frame to MTU + 18 bytes, where it cannot be told from
    // a full tagged frame; the decoder drops such an IP frame as truncated (decode_errors). GRO
    // off again too, in case the batched port turned it on before it failed to open.
    for (const feature of ['tso', 'gso', 'gro']) {
      try {
        run('ethtool', ['-K', this.name, feature, 'off']);
      } catch {
        // fixed on by the driver: libpcap keeps whole frames, and the size check below sees them
      }
    }
    const cap = new Cap();
    const before = new Set(socketFds());
    cap.open(this.name, '', RING_BYTES, this.rx);
    this.watchCapDrops(before);
    const lengths = this.lengths;
    // Without the metadata a frame above the MTU can only be a super-frame (or a merged one): sent
    // on as it is, it would be refused or arrive with a partial checksum. Reported as not fitting.
    // (Seen whole only where libpcap keeps 64 KiB frames, see above.)
    const largest = this.mtu() + FRAME_OVERHEAD;
    cap.on('packet', (length: number, truncated: boolean) => {
      lengths[0] = length;
      lengths[1] = truncated || length > largest ? length + 1 : length;
      onBatch(1);
    });
    this.cap = cap;
    this.io = 'cap';
    this.ioLimitation = 'cap port I/O cannot carry offload metadata: hosts with TX checksum offload or TSO/GSO on ' +
      'send partial checksums and super-frames that it cannot forward correctly; frames above the MTU are dropped ' +
      '(counted as truncated or as decode errors) (turn those offloads off on the hosts, or build the batched addon)';
    process.emitWarning(`port ${this.name}: ${this.ioLimitation}`);
  }

  /**
   * cap does not expose libpcap's pcap_stats(): its packet socket is the one cap.open() added to this
   * process, and the addon reads the same PACKET_STATISTICS from it that pcap_stats() would.
   */
  private watchCapDrops(before: Set<number>): void {
    const loaded = loadBatchPort();
    if (typeof loaded === 'string') {
      this.kernelDropsUncounted = `frames the kernel drops are not counted: ${loaded}`;
      return;
    }
    for (const fd of socketFds()) {
      if (!before.has(fd) && loaded.packetDrops(fd) >= 0) {
        this.capFd = fd;
        this.capDrops = loaded.packetDrops;
        return;
      }
    }
    this.kernelDropsUncounted = 'frames the kernel drops are not counted: libpcap\'s packet socket not found';
  }

  /**
   * Frames the kernel dropped on this port since the last call, before the dataplane saw them: the
   * receive ring was full because the event loop did not read it in time. One getsockopt(); the
   * kernel's count restarts at each read, the caller adds them up. Call it seldom (once a second).
   */
  takeKernelDrops(): number {
    if (this.batchPort !== undefined) return this.batchPort.kernelDrops();
    if (this.capDrops !== undefined) return Math.max(0, this.capDrops(this.capFd));
    return 0;
  }

  /**
   * Queue frame `index` of `source`'s current batch (`length` bytes) to be sent out of this port,
   * with the offload metadata it was received with.
   */
  queue(source: Port, index: number, length: number): void {
    if ((this.txSource !== source && this.txCount > 0) || this.txCount === BATCH_FRAMES) this.flush();
    this.txSource = source;
    const n = this.txCount++;
    this.tx[2 * n] = index * source.slotBytes + (source.cap === undefined ? source.starts[index] : 0);
    this.tx[2 * n + 1] = length;
    this.txViews[n] = source.frames[index];
    this.txBytes += length;
  }

  /** Send the queued frames in order, or hand them to the send thread (cap: sends and reports at once). */
  flush(): void {
    const count = this.txCount;
    if (count === 0) return;
    if (this.batchPort !== undefined) {
      this.batchPort.queue(this.txSource!.rx, this.tx, count);
    } else {
      let refused = 0;
      let refusedBytes = 0;
      for (let i = 0; i < count; i++) {
        if (!this.sendCap(this.txViews[i], this.tx[2 * i + 1])) {
          refused++;
          refusedBytes += this.tx[2 * i + 1];
        }
      }
      this.onSent(count - refused, this.txBytes - refusedBytes, refused);
    }
    this.txCount = 0;
    this.txBytes = 0;
  }

  /** Send `length` bytes of `frame`, a complete frame, right away (rejects); false when the kernel refused it. */
  send(frame: Buffer, length: number): boolean {
    if (this.batchPort !== undefined) {
      this.single[1] = length;
      return this.batchPort.sendNow(frame, this.single, 1);
    }
    return this.sendCap(frame, length);
  }

  private sendCap(frame: Buffer, length: number): boolean {
    try {
      this.cap!.send(frame, length);
      return true;
    } catch {
      return false;
    }
  }

  /** True when the frame in `frame` was sent from this port's own MAC address. */
  isOwnFrame(frame: Uint8Array): boolean {
    const mac = this.mac;
    return frame[6] === mac[0] && frame[7] === mac[1] && frame[8] === mac[2] &&
      frame[9] === mac[3] && frame[10] === mac[4] && frame[11] === mac[5];
  }

  /** GRO on the port: the engine decides a flow's merged segments once (openBatched says what it gains). */
  private mergeReceived(): void {
    try {
      run('ethtool', ['-K', this.name, 'gro', 'on']);
    } catch {
      // fixed off by the driver
    }
  }

  /**
   * A veth port, once the kernel fast path forwards its established flows: GRO off. Other drivers
   * keep it (their GRO is the NAPI they have anyway). On veth, GRO runs the port's receive in one
   * NAPI context: two 64-byte senders through the fast path went 24-1550 kpps from one 2 s run to
   * the next (the senders stalled on veth's full ring), against a steady 382-441 kpps with GRO off
   * (the kernel bridge beside it 356-374). Receive packet steering was tried and left out: it ended
   * the reordering GRO off brings to a TCP flow (bench/README.md, "The kernel fast path"), but put
   * the wire bench's one 64-byte flow on one CPU, beside a sender (227-272 kpps).
   */
  steerForFastPath(): void {
    if (this.driver() !== 'veth') return;
    try {
      run('ethtool', ['-K', this.name, 'gro', 'off']);
    } catch {
      // fixed by the driver
    }
  }

  private driver(): string {
    try {
      return /^driver: (\S+)/m.exec(execFileSync('ethtool', ['-i', this.name], { encoding: 'utf8' }))?.[1] ?? '';
    } catch {
      return '';
    }
  }

  /** The batched port's receive socket (the kernel fast path filters it); undefined with cap or closed. */
  receiveSocket(): number | undefined {
    const fd = this.batchPort?.receiveSocket() ?? -1;
    return fd < 0 ? undefined : fd;
  }

  /** Link state as the kernel reports it ("up", "down", ...). */
  operState(): string {
    try {
      return readFileSync(`/sys/class/net/${this.name}/operstate`, 'utf8').trim();
    } catch {
      return 'missing';
    }
  }

  /** Stop capturing; frames already handed over are still sent and reported. */
  close(): void {
    this.batchPort?.close();
    this.cap?.close();
    this.batchPort = undefined;
    this.cap = undefined;
    this.capFd = -1;
    this.capDrops = undefined;
    this.kernelDropsUncounted = undefined;
    this.io = undefined;
    this.sendThread = false;
    this.ioLimitation = undefined;
  }

  private mtu(): number {
    return Number(readFileSync(`/sys/class/net/${this.name}/mtu`, 'utf8'));
  }
}

/** $GATEKEEPER_BUSY_POLL_US: -1 for `off`, else 0 to 1000000 µs; anything else is refused at open. */
export function busyPollMicros(value = process.env[BUSY_POLL_ENV]): number {
  if (value === undefined || value === '') return BUSY_POLL_MICROS;
  if (value === 'off') return -1;
  const micros = Number(value);
  if (!Number.isInteger(micros) || micros < 0 || micros > 1_000_000) {
    throw new Error(`${BUSY_POLL_ENV} must be off or a whole number of microseconds from 0 to 1000000, not ${JSON.stringify(value)}`);
  }
  return micros;
}

/** The busy polling of the batched ports so far (one poller for all of them); undefined when none is open. */
export function busyPollStats(ports: readonly Port[]): BusyPollStats | undefined {
  if (!ports.some((port) => port.io === 'batched')) return undefined;
  const addon = loadBatchPort();
  return typeof addon === 'string' ? undefined : addon.busyPollCounters();
}

function defaultIo(): PortIo {
  return process.env[PORT_IO_ENV] === 'cap' ? 'cap' : 'batched';
}

/** This process's socket descriptors (cap's packet socket is found among them). */
function socketFds(): number[] {
  const fds: number[] = [];
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${name}`).startsWith('socket:')) fds.push(Number(name));
    } catch {
      // closed meanwhile (the listing's own descriptor)
    }
  }
  return fds;
}

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}
