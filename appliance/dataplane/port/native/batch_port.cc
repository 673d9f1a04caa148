// Batched I/O for one appliance data port, on two AF_PACKET sockets of its own, both with
// PACKET_VNET_HDR so every frame keeps the kernel's offload metadata (struct virtio_net_hdr:
// "checksum still to be completed" and GSO type/size of a super-frame):
// - receive: a TPACKET_V2 ring the kernel fills as frames arrive; on each readable event up to
//   `slots` frames are copied from it into one shared buffer of fixed-size slots, each laid out as
//   [vnet header][frame]; lengths, and per frame its start in the slot and the segments it stands
//   for, go to typed arrays, and JS is called once per batch. Super-frames, larger than a ring
//   frame, are read whole from the socket (PACKET_COPY_THRESH). A VLAN tag the kernel holds beside
//   the frame is put back in place without moving the frame: header and MAC addresses move 4 bytes
//   down, so the frame starts 4 bytes earlier in its slot.
// - send: JS hands over the frames of a batch in one call and they leave with one sendmmsg(),
//   each with the vnet header received with it (the bytes just before the frame): a partial
//   checksum is completed, and a super-frame segmented, by the kernel or the NIC on the way out,
//   as the sending host meant. Frames sent on their own (rejects) carry a zero header.
//   Either right away on the event loop's thread, or, with a send thread, copied to a queue that
//   the port's own thread sends from. Sending costs the kernel far more than deciding (skb, driver
//   and, on veth, the receiving host's whole stack), so on a box with cores to spare the thread
//   lets it run beside the event loop; where cores are scarce the hand-over costs more than it
//   gives (measured on 2 cores). Either way the outcome comes back to JS through onSent().
// Busy polling (busyPollMicros, default 20 ms from port.ts): after a receive wakeup the event loop
// keeps reading every open port's ring until none had a frame for that long, in turns of at most
// 200 µs with a loop turn between them (a libuv idle handle, so timers and management still run),
// and not at all for 100 ms after the poller found itself preempted (another task wanted the CPU;
// busyPollCounters() counts these back-offs, and the stalls: pauses with no task wanting the CPU).
// Why, measured on the 2-core Firecracker VM (instrumented build, ping every 10 ms through the box,
// hosts' offloads on, medians per pass): sleeping in epoll, a frame waited 41-47 µs in the ring
// for the event loop, the first frame after an idle gap spent 94-113 µs in JS (10 µs warm) and its
// answer 56-72 µs in sendmmsg() (8 µs warm): the vCPU halts between frames and comes back cold.
// Polling through the gap: ring wait 4-8 µs, JS 4-10 µs, a pass 25-32 µs. bench:wire, ping round
// trip added over the kernel bridge (hosts' offloads on): p50 3-16 µs polling against 147-176 µs
// not polling (loads 0.5-9); p99 223 µs on a quiet box, but 4-12 ms under load 5-6 (a spinning
// task waits out other tasks' time slices), as without polling (3.6-4.1 ms). Holding
// /dev/cpu_dma_latency at 0 instead changed nothing here (the guest's haltpoll is disabled);
// SCHED_IDLE spinners beside the dataplane made p99 worse.
// Keeping warm (warmMicros, 200 µs from port.ts): while polling finds every ring empty, each port's
// onBatch(0) runs that often, a pass over its last frame that decides nothing. The host evicts a
// spinning vCPU's caches within 1-5 ms (a fixed piece of JS took 17 µs right after itself and
// 170 µs after a 5 ms spin; touched every 200 µs in between, 28 µs), so without it the first frame
// after a gap found the path cold again.
// Frames leave through the second socket, which only sends; the receiving one takes inbound frames
// only (PACKET_IGNORE_OUTGOING), so nothing sent here is seen again.
// Frames the kernel dropped because the ring was full (the event loop did not read it in time) are
// read from PACKET_STATISTICS on request (kernelDrops(); also for libpcap's socket, packetDrops(fd)).
// Must not modify frame bytes beyond the VLAN tag it restores.

#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

// Receive batches handled per readable event before returning to the event loop (timers, the other port).
constexpr int kBatchesPerWakeup = 8;
// The longest one turn of busy polling reads the rings before the event loop gets a turn.
constexpr int64_t kBusyPollTurnNs = 200000;
// An empty poll that took longer than this was held up. When the thread's involuntary context
// switches went up meanwhile, it was preempted: another task wanted the CPU. Polling then stops, and
// wakeups only look at the rings once more for kBusyPollBackoffNs, so the hosts of a lab (iperf3)
// or the box's other work get the CPU back. bench:wire TCP, hosts' offloads on, against the kernel
// bridge + nft: polling without this 0.60-0.64x, with it 0.72x, not polling 0.69-0.96x. 50 µs
// tripped on a VM's ordinary interruptions (ping p50 back to 0.16-0.19 ms). Without a context
// switch the host took the vCPU (steal) or interrupts did: no task here wants the CPU, so polling
// goes on and the pause counts as a stall. Measured under ping on the 2-core VM: 4 of 6 such pauses
// in one run (1.1-3.5 ms) had no context switch, and each had cost 100 ms of pings not polled.
constexpr int64_t kPreemptedNs = 1000000;
constexpr int64_t kBusyPollBackoffNs = 100000000;
// Send batches queued for the send thread before the event loop waits for it (back pressure).
constexpr int kSendQueueDepth = 8;
// The offload metadata before every frame, in the kernel's byte order (little-endian virtio).
constexpr uint32_t kVnet = 10;
// Where a frame starts in its receive slot: after room for a VLAN tag and the vnet header. With a
// restored tag it starts kTagBytes earlier (the header moves down with it).
constexpr uint32_t kTagBytes = 4;
constexpr uint32_t kFrameStart = kTagBytes + kVnet;
constexpr uint32_t kMacBytes = 12;

// struct virtio_net_hdr of <linux/virtio_net.h> (which C++ cannot include: a member named `class`),
// in the host's byte order as packet sockets use it on little-endian machines.
struct VnetHeader {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
};
static_assert(sizeof(VnetHeader) == 10, "virtio_net_hdr is 10 bytes");
constexpr uint8_t kNeedsCsum = 1;
constexpr uint8_t kGsoNone = 0;
constexpr uint8_t kGsoTcpV4 = 1;
constexpr uint8_t kGsoUdp = 3;
constexpr uint8_t kGsoTcpV6 = 4;
constexpr uint8_t kGsoUdpL4 = 5;
constexpr uint8_t kGsoEcn = 0x80;

// Ring blocks: large enough for a frame of any MTU, small enough to allocate.
constexpr uint32_t kRingBlockBytes = 1 << 20;

// The receive ring, mapped from the kernel: `frames` frames of `frame_size`; `head` is the next to read.
struct Ring {
  uint8_t* base = nullptr;
  size_t bytes = 0;
  uint32_t frame_size = 0;
  uint32_t frames = 0;
  uint32_t head = 0;
};

// Frames waiting for the send thread, copied back to back (each with its vnet header).
struct SendBatch {
  std::vector<uint8_t> bytes;
  std::vector<iovec> iovecs;
  std::vector<mmsghdr> messages;
  size_t used = 0;
  // Frame bytes without the vnet headers (what onSent reports).
  double frame_bytes = 0;
  uint32_t count = 0;
};

// Receive side of one slot when a super-frame is read from the socket: vnet header, MAC addresses,
// the rest, and the kernel's aux data.
struct RxSlot {
  iovec iov[3];
  alignas(cmsghdr) uint8_t control[CMSG_SPACE(sizeof(tpacket_auxdata))];
};

class BatchPort : public Napi::ObjectWrap<BatchPort> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "BatchPort", {
      InstanceMethod("open", &BatchPort::Open),
      InstanceMethod("queue", &BatchPort::Queue),
      InstanceMethod("sendNow", &BatchPort::SendNow),
      InstanceMethod("close", &BatchPort::Close),
      InstanceMethod("kernelDrops", &BatchPort::KernelDrops),
      InstanceMethod("receiveSocket", &BatchPort::ReceiveSocket),
    });
    exports.Set("BatchPort", ctor);
    exports.Set("packetDrops", Napi::Function::New(env, PacketDrops));
    exports.Set("busyPollCounters", Napi::Function::New(env, BusyPollCounters));
    exports.Set("frameStart", Napi::Number::New(env, kFrameStart));
    exports.Set("taggedFrameStart", Napi::Number::New(env, kFrameStart - kTagBytes));
    return exports;
  }

  explicit BatchPort(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BatchPort>(info) {}

  // Reached without close() only when Node.js tears down with the port open (process.exit()).
  ~BatchPort() override {
    StopSender();
    if (ring_.base != nullptr) munmap(ring_.base, ring_.bytes);
    if (fd_ >= 0) close(fd_);
    if (send_fd_ >= 0) close(send_fd_);
  }

 private:
  // open(device, rcvbufBytes, rxBuffer, rxLengths, rxMeta, slotBytes, sendBatchBytes, onBatch, onSent, sendThread, busyPollMicros, warmMicros)
  Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ >= 0) return Throw(env, "port already open");
    if (info.Length() < 12 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsBuffer() ||
        !info[3].IsTypedArray() || !info[4].IsTypedArray() || !info[5].IsNumber() || !info[6].IsNumber() ||
        !info[7].IsFunction() || !info[8].IsFunction() || !info[9].IsBoolean() || !info[10].IsNumber() || !info[11].IsNumber()) {
      return Throw(env, "open(device, rcvbufBytes, rxBuffer, rxLengths, rxMeta, slotBytes, sendBatchBytes, onBatch, onSent, sendThread, busyPollMicros, warmMicros)");
    }
    double busy_poll_us = info[10].As<Napi::Number>().DoubleValue();
    if (!(busy_poll_us >= -1 && busy_poll_us <= 1000000)) return Throw(env, "busyPollMicros must be -1 (off) or 0 to 1000000");
    double warm_us = info[11].As<Napi::Number>().DoubleValue();
    if (!(warm_us >= 0 && warm_us <= 1000000)) return Throw(env, "warmMicros must be 0 (never) to 1000000");
    std::string device = info[0].As<Napi::String>();
    int rcvbuf_bytes = info[1].As<Napi::Number>().Int32Value();
    Napi::Buffer<uint8_t> rx = info[2].As<Napi::Buffer<uint8_t>>();
    Napi::TypedArray lengths_array = info[3].As<Napi::TypedArray>();
    Napi::TypedArray meta_array = info[4].As<Napi::TypedArray>();
    slot_bytes_ = info[5].As<Napi::Number>().Uint32Value();
    size_t send_batch_bytes = info[6].As<Napi::Number>().Uint32Value();
    if (lengths_array.TypedArrayType() != napi_uint32_array) return Throw(env, "rxLengths must be a Uint32Array");
    if (meta_array.TypedArrayType() != napi_uint16_array) return Throw(env, "rxMeta must be a Uint16Array");
    Napi::Uint32Array lengths = lengths_array.As<Napi::Uint32Array>();
    Napi::Uint16Array meta = meta_array.As<Napi::Uint16Array>();
    if (slot_bytes_ < 128) return Throw(env, "slotBytes must be at least 128");
    slots_ = static_cast<int>(rx.Length() / slot_bytes_);
    if (slots_ < 1 || lengths.ElementLength() < static_cast<size_t>(slots_) * 2 ||
        meta.ElementLength() < static_cast<size_t>(slots_) * 2) {
      return Throw(env, "rxBuffer must hold at least one slot, rxLengths and rxMeta two numbers per slot");
    }
    if (send_batch_bytes < 65536 + kVnet) return Throw(env, "sendBatchBytes must hold a 64 KiB frame and its header");

    unsigned int ifindex = if_nametoindex(device.c_str());
    if (ifindex == 0) return Throw(env, "no interface " + device);
    int fd = OpenReceiveSocket(device, ifindex, rcvbuf_bytes, &ring_);
    if (fd < 0) return Throw(env, "receive socket for " + device + ": " + strerror(errno));
    // Frames leave through a socket of their own, bound to the port with protocol 0: it receives
    // nothing, and since nothing waits on it the kernel skips the write-space wakeup it would
    // otherwise attempt on the receive socket's wait queue (the event loop's epoll) for every frame sent.
    send_fd_ = OpenSendSocket(ifindex);
    if (send_fd_ < 0) {
      std::string why = strerror(errno);
      CloseRing(fd);
      return Throw(env, "send socket for " + device + ": " + why);
    }
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    if (uv_poll_init(loop, &poll_, fd) != 0 || uv_async_init(loop, &sent_async_, OnSentAsync) != 0) {
      close(send_fd_);
      send_fd_ = -1;
      CloseRing(fd);
      return Throw(env, "libuv: cannot watch the port");
    }
    bool send_thread = info[9].As<Napi::Boolean>().Value();
    if (send_thread) {
      send_batches_.resize(kSendQueueDepth);
      for (SendBatch& batch : send_batches_) {
        batch.bytes.resize(send_batch_bytes);
        batch.iovecs.resize(static_cast<size_t>(slots_));
        batch.messages.resize(static_cast<size_t>(slots_));
      }
    }
    fd_ = fd;
    env_ = env;
    rx_ = rx.Data();
    lengths_ = lengths.Data();
    meta_ = meta.Data();
    rx_slots_.resize(static_cast<size_t>(slots_));
    rx_messages_.resize(static_cast<size_t>(slots_));
    for (int i = 0; i < slots_; i++) {
      uint8_t* slot = rx_ + static_cast<size_t>(i) * slot_bytes_;
      RxSlot& s = rx_slots_[i];
      s.iov[0] = {slot + kTagBytes, kVnet};
      s.iov[1] = {slot + kFrameStart, kMacBytes};
      s.iov[2] = {slot + kFrameStart + kMacBytes, slot_bytes_ - kFrameStart - kMacBytes};
      msghdr& m = rx_messages_[i].msg_hdr;
      m.msg_iov = s.iov;
      m.msg_iovlen = 3;
    }
    rx_ref_ = Napi::Persistent(rx.As<Napi::Object>());
    lengths_ref_ = Napi::Persistent(lengths.As<Napi::Object>());
    meta_ref_ = Napi::Persistent(meta.As<Napi::Object>());
    on_batch_ = Napi::Persistent(info[7].As<Napi::Function>());
    on_sent_ = Napi::Persistent(info[8].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "gatekeeper:port");
    poll_.data = this;
    sent_async_.data = this;
    busy_poll_ns_ = busy_poll_us < 0 ? -1 : static_cast<int64_t>(busy_poll_us * 1000);
    warm_ns_ = static_cast<int64_t>(warm_us * 1000);
    BusyPollState& busy = BusyPoll();
    if (!busy.initialized) {
      uv_idle_init(loop, &busy.idle);
      uv_unref(reinterpret_cast<uv_handle_t*>(&busy.idle));  // never what keeps the process alive
      busy.initialized = true;
    }
    OpenPorts().push_back(this);
    busy.idle_ns = LongestBusyPoll();
    busy.warm_ns = ShortestWarm();
    Ref();  // the open port stays alive until its handles are closed
    uv_poll_start(&poll_, UV_READABLE, OnReadable);
    if (send_thread) sender_ = std::thread(&BatchPort::SendLoop, this);
    return env.Undefined();
  }

  // Promiscuous, every protocol, inbound only, with vnet headers and VLAN tags, and a receive ring
  // (TPACKET_V2) whose frames hold an MTU-sized frame: the kernel copies each frame into it in the
  // softirq that delivers it, and reading it costs no system call. A frame too large for a ring
  // frame (a super-frame) is marked TP_STATUS_COPY there and also queued whole on the socket
  // (PACKET_COPY_THRESH), where recvmsg() reads it. Dataplane CPU per frame under iperf3, offloads
  // off, A/B against the libpcap capture before: recvmmsg() of every frame 1.18x, this ring 0.93x
  // (bench/README.md).
  static int OpenReceiveSocket(const std::string& device, unsigned int ifindex, int buffer_bytes, Ring* ring) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    ifreq mtu{};
    strncpy(mtu.ifr_name, device.c_str(), IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFMTU, &mtu) != 0) {
      int saved = errno;
      close(fd);
      errno = saved;
      return -1;
    }
    int one = 1;
    int version = TPACKET_V2;
    packet_mreq promisc{};
    promisc.mr_ifindex = static_cast<int>(ifindex);
    promisc.mr_type = PACKET_MR_PROMISC;
    sockaddr_ll address{};
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = static_cast<int>(ifindex);
    // Where the kernel puts a frame in a ring frame (tpacket_rcv): after the header, the address
    // and the vnet header, aligned. The ring frame holds the MTU plus two tags; less than a page
    // for a 1500-byte MTU, so the ring holds many frames of a burst.
    uint32_t mac_offset = TPACKET_ALIGN(TPACKET2_HDRLEN + 16) + kVnet - 14;
    uint32_t frame_size = 2048;
    while (frame_size < mac_offset + static_cast<uint32_t>(mtu.ifr_mtu) + 2 * kTagBytes + 14) frame_size *= 2;
    tpacket_req req{};
    req.tp_block_size = frame_size > kRingBlockBytes ? frame_size : kRingBlockBytes;
    req.tp_frame_size = frame_size;
    req.tp_block_nr = static_cast<unsigned int>(buffer_bytes) / req.tp_block_size;
    if (req.tp_block_nr < 1) req.tp_block_nr = 1;
    req.tp_frame_nr = req.tp_block_nr * (req.tp_block_size / frame_size);
    // The kernel buffer for super-frames (the ring holds the rest) absorbs bursts while the event
    // loop is busy (FORCE: above rmem_max, as root).
    if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof(version)) != 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_COPY_THRESH, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) != 0 ||
        (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer_bytes, sizeof(buffer_bytes)) != 0 &&
         setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_bytes, sizeof(buffer_bytes)) != 0) ||
        setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) != 0) {
      int saved = errno;
      close(fd);
      errno = saved;
      return -1;
    }
    size_t bytes = static_cast<size_t>(req.tp_block_size) * req.tp_block_nr;
    void* map = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &promisc, sizeof(promisc)) != 0) {
      int saved = errno;
      if (map != MAP_FAILED) munmap(map, bytes);
      close(fd);
      errno = saved;
      return -1;
    }
    ring->base = static_cast<uint8_t*>(map);
    ring->bytes = bytes;
    ring->frame_size = frame_size;
    ring->frames = req.tp_frame_nr;
    ring->head = 0;
    return fd;
  }

  void CloseRing(int fd) {
    munmap(ring_.base, ring_.bytes);
    ring_ = Ring{};
    close(fd);
  }

  static int OpenSendSocket(unsigned int ifindex) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    sockaddr_ll address{};
    address.sll_family = AF_PACKET;
    address.sll_protocol = 0;  // bound for sending only: no receive hook
    address.sll_ifindex = static_cast<int>(ifindex);
    if (setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) != 0 ||
        bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      int saved = errno;
      close(fd);
      errno = saved;
      return -1;
    }
    return fd;
  }

  static void OnReadable(uv_poll_t* handle, int status, int /*events*/) {
    BatchPort* self = static_cast<BatchPort*>(handle->data);
    if (self->closing_) return;
    if (status < 0) {
      // A port taken down (ip link set down, a link-fault mirror, a NIC reset) leaves ENETDOWN on the
      // socket; libuv then stops the poll. Reading SO_ERROR clears it, and the socket receives again
      // once the port is back up, so polling resumes instead of the port going deaf for good.
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(self->fd_, SOL_SOCKET, SO_ERROR, &err, &len);
      uv_poll_start(handle, UV_READABLE, OnReadable);
      return;
    }
    Napi::Env env(self->env_);
    Napi::HandleScope scope(env);
    InWakeup() = true;
    bool healthy = self->ReceiveBatches(env);
    BusyPoll().warm_at = MonotonicNs() + BusyPoll().warm_ns;  // the path just ran
    // Then every open port's ring, for up to busy_poll_ns_ after the last frame seen: what this
    // wakeup sent often makes the answer arrive at once (veth runs the receiving host's stack in our
    // send), and a frame taken here costs no event-loop turn and finds this vCPU still awake.
    if (healthy && self->busy_poll_ns_ >= 0) {
      BusyPollState& poll = BusyPoll();
      int64_t now = MonotonicNs();
      int64_t until = now + (now < poll.backoff_until ? 0 : self->busy_poll_ns_);
      if (until > poll.quiet_until) poll.quiet_until = until;
      healthy = PollRings(env);
    }
    InWakeup() = false;
    ReportSent();
  }

  // What the frames of this wakeup did, reported now rather than through each port's async
  // handle: that cost a wakeup of the event loop (and a loop turn) per batch sent.
  static void ReportSent() {
    std::vector<BatchPort*>& unreported = Unreported();
    while (!unreported.empty()) {
      BatchPort* port = unreported.back();
      unreported.pop_back();
      port->report_queued_ = false;
      OnSentAsync(&port->sent_async_);
    }
  }

  // Up to kBatchesPerWakeup batches from this port's ring, each handed to JS; false after an exception.
  bool ReceiveBatches(Napi::Env env) {
    for (int round = 0; round < kBatchesPerWakeup && !closing_; round++) {
      int n = Receive();
      if (n > 0) {
        on_batch_.MakeCallback(env.Global(), {Napi::Number::New(env, n)}, *context_);
        if (!Healthy(env)) return false;
      }
      if (n < slots_) break;  // the ring is empty (or failed: the next wakeup says so)
    }
    return true;
  }

  bool RingReady() const {
    const tpacket2_hdr* h = reinterpret_cast<const tpacket2_hdr*>(ring_.base + static_cast<size_t>(ring_.head) * ring_.frame_size);
    return (__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) != 0;
  }

  // Busy polling, shared by the ports of this thread (the event loop's): until `quiet_until` (a
  // port's busy-poll time after the last frame any ring had) the rings are read in turns of at most
  // kBusyPollTurnNs, from the receive wakeup and then from an idle handle, which keeps the event
  // loop from sleeping in epoll while it runs: timers and management get a loop turn between turns.
  struct BusyPollState {
    uv_idle_t idle{};
    bool initialized = false;
    bool active = false;
    int64_t quiet_until = 0;
    // Until then the rings are not polled beyond one look (preempted while polling).
    int64_t backoff_until = 0;
    // Since start: polling stopped because the thread was preempted; empty polls held up longer than
    // kPreemptedNs without a context switch (the host or interrupts held the CPU).
    double backoffs = 0;
    double stalls = 0;
    // The longest busy-poll time of the open ports: how long after a frame polling goes on.
    int64_t idle_ns = 0;
    // While polling, when the ports are next kept warm (onBatch(0)), and how often (0: never).
    int64_t warm_at = 0;
    int64_t warm_ns = 0;
  };
  static BusyPollState& BusyPoll() {
    static BusyPollState state;
    return state;
  }

  // One turn: reads every open port's ring until the quiet time is reached or the turn is over;
  // keeps the idle handle running while the quiet time is not reached. False after an exception.
  static bool PollRings(Napi::Env env) {
    BusyPollState& poll = BusyPoll();
    int64_t now = MonotonicNs();
    const int64_t turn_end = now + kBusyPollTurnNs;
    const long preempted_before = InvoluntarySwitches();
    bool idle_before = false;
    for (;;) {
      bool any = false;
      const int64_t checked = now;
      std::vector<BatchPort*>& ports = OpenPorts();
      for (size_t i = 0; i < ports.size(); i++) {
        BatchPort* port = ports[i];
        if (port->closing_ || !port->RingReady()) continue;
        any = true;
        if (!port->ReceiveBatches(env)) return false;
      }
      now = MonotonicNs();
      if (!any && idle_before && now - checked > kPreemptedNs) {
        if (InvoluntarySwitches() > preempted_before) {
          poll.backoffs++;
          poll.backoff_until = now + kBusyPollBackoffNs;
          poll.quiet_until = now;
          break;
        }
        poll.stalls++;
      }
      // Kept warm only while spinning (a second empty look in a row), not after a wakeup's one look.
      const bool spinning = !any && idle_before;
      idle_before = !any;
      if (any) {
        poll.warm_at = now + poll.warm_ns;
      } else if (spinning && poll.warm_ns > 0 && now >= poll.warm_at) {
        if (!WarmPorts(env)) return false;
        now = MonotonicNs();
        poll.warm_at = now + poll.warm_ns;
        idle_before = false;  // the time the warm pass took is no sign of preemption
      }
      if (any && now < poll.backoff_until) poll.quiet_until = now;
      else if (any && now + poll.idle_ns > poll.quiet_until) poll.quiet_until = now + poll.idle_ns;
      if (now >= poll.quiet_until || now >= turn_end) break;
      // Not sched_yield(): measured under load 8-12, each yield pushed the poller's EEVDF deadline
      // further and pings waited up to 15-45 ms (p99) for it, against 0.3-2.6 ms with a pause;
      // the scheduler's time slices share the CPU with other tasks instead.
      if (!any) __builtin_ia32_pause();
    }
    bool more = now < poll.quiet_until && !OpenPorts().empty();
    if (more && !poll.active) uv_idle_start(&poll.idle, OnIdle);
    if (!more && poll.active) uv_idle_stop(&poll.idle);
    poll.active = more;
    return true;
  }

  // Each open port's onBatch(0): its slots still hold the last batch, which JS runs its path over
  // without deciding anything, so the next frame finds that code and data in the caches. False
  // after an exception.
  static bool WarmPorts(Napi::Env env) {
    std::vector<BatchPort*>& ports = OpenPorts();
    for (size_t i = 0; i < ports.size(); i++) {
      BatchPort* port = ports[i];
      if (port->closing_) continue;
      port->on_batch_.MakeCallback(env.Global(), {Napi::Number::New(env, 0)}, *port->context_);
      if (!port->Healthy(env)) return false;
    }
    return true;
  }

  static void OnIdle(uv_idle_t* /*handle*/) {
    std::vector<BatchPort*>& ports = OpenPorts();
    if (ports.empty()) return;
    Napi::Env env(ports[0]->env_);
    Napi::HandleScope scope(env);
    InWakeup() = true;
    PollRings(env);
    InWakeup() = false;
    ReportSent();
  }

  // The calling thread's involuntary context switches so far (another task was given its CPU).
  static long InvoluntarySwitches() {
    rusage usage;
    return getrusage(RUSAGE_THREAD, &usage) == 0 ? usage.ru_nivcsw : 0;
  }

  // busyPollCounters(): { backoffs, stalls } of this thread's polling since start (BusyPollState).
  static Napi::Value BusyPollCounters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object counters = Napi::Object::New(env);
    counters.Set("backoffs", Napi::Number::New(env, BusyPoll().backoffs));
    counters.Set("stalls", Napi::Number::New(env, BusyPoll().stalls));
    return counters;
  }

  static int64_t MonotonicNs() {
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
  }

  // The open ports of this thread (the event loop's), whose rings PollRings() reads.
  static std::vector<BatchPort*>& OpenPorts() {
    static std::vector<BatchPort*> ports;
    return ports;
  }

  static int64_t LongestBusyPoll() {
    int64_t longest = 0;
    for (BatchPort* port : OpenPorts()) longest = port->busy_poll_ns_ > longest ? port->busy_poll_ns_ : longest;
    return longest;
  }

  static int64_t ShortestWarm() {
    int64_t shortest = 0;
    for (BatchPort* port : OpenPorts()) {
      if (port->warm_ns_ > 0 && (shortest == 0 || port->warm_ns_ < shortest)) shortest = port->warm_ns_;
    }
    return shortest;
  }

  // Ports of this thread with sends not yet reported, and whether a receive wakeup is running.
  static std::vector<BatchPort*>& Unreported() {
    static std::vector<BatchPort*> ports;
    return ports;
  }
  static bool& InWakeup() {
    static bool running = false;
    return running;
  }

  // Takes up to `slots_` frames from the ring (and super-frames from the socket) into the slots;
  // fills lengths_ and meta_. Returns how many.
  int Receive() {
    int n = 0;
    while (n < slots_) {
      tpacket2_hdr* h = reinterpret_cast<tpacket2_hdr*>(ring_.base + static_cast<size_t>(ring_.head) * ring_.frame_size);
      uint32_t status = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
      if ((status & TP_STATUS_USER) == 0) break;
      uint8_t* slot = rx_ + static_cast<size_t>(n) * slot_bytes_;
      uint32_t wire = h->tp_len;
      // A ring frame may hold more than a slot (it is a power of two for large MTUs).
      uint32_t room = slot_bytes_ - kFrameStart;
      uint32_t captured = h->tp_snaplen < room ? h->tp_snaplen : room;
      uint16_t tci = h->tp_vlan_tci;
      uint16_t tpid = h->tp_vlan_tpid;
      bool whole = false;
      if ((status & TP_STATUS_COPY) != 0) whole = ReceiveWhole(n, &wire, &captured, &status, &tci, &tpid);
      if (!whole) {
        // The vnet header lies just before the frame in the ring frame: one copy takes both.
        memcpy(slot + kTagBytes, reinterpret_cast<uint8_t*>(h) + h->tp_mac - kVnet, kVnet + captured);
      }
      __atomic_store_n(&h->tp_status, static_cast<uint32_t>(TP_STATUS_KERNEL), __ATOMIC_RELEASE);
      ring_.head = ring_.head + 1 == ring_.frames ? 0 : ring_.head + 1;
      Finish(n, wire, captured, status, tci, tpid);
      n++;
    }
    return n;
  }

  // A super-frame: the ring holds its start, the socket all of it (and its aux data, for the tag).
  // False when it is not there (the kernel buffer was full): the ring's truncated copy is used.
  bool ReceiveWhole(int i, uint32_t* wire, uint32_t* captured, uint32_t* status, uint16_t* tci, uint16_t* tpid) {
    msghdr& m = rx_messages_[i].msg_hdr;
    m.msg_control = rx_slots_[i].control;
    m.msg_controllen = sizeof(rx_slots_[i].control);
    m.msg_flags = 0;
    ssize_t got;
    do {
      got = recvmsg(fd_, &m, MSG_DONTWAIT | MSG_TRUNC);
    } while (got < 0 && errno == EINTR);
    if (got < static_cast<ssize_t>(kVnet)) return false;
    const uint32_t room = slot_bytes_ - kFrameStart;
    // With MSG_TRUNC the kernel reports the frame's whole length, also when it did not fit.
    *wire = static_cast<uint32_t>(got) - kVnet;
    *captured = *wire < room ? *wire : room;
    const tpacket_auxdata* aux = Aux(m);
    *status &= ~static_cast<uint32_t>(TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID);
    if (aux != nullptr) {
      *status |= aux->tp_status & (TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID);
      *tci = aux->tp_vlan_tci;
      *tpid = aux->tp_vlan_tpid;
    }
    return true;
  }

  // Slot i holds the vnet header at kTagBytes and the frame after it: puts back a VLAN tag the
  // kernel held beside the frame, and writes its lengths, start and segments.
  void Finish(int i, uint32_t wire, uint32_t captured, uint32_t status, uint16_t tci, uint16_t tpid) {
    uint8_t* slot = rx_ + static_cast<size_t>(i) * slot_bytes_;
    uint32_t start = kFrameStart;
    if ((status & TP_STATUS_VLAN_VALID) != 0 && captured >= kMacBytes) {
      if ((status & TP_STATUS_VLAN_TPID_VALID) == 0) tpid = ETH_P_8021Q;
      memmove(slot, slot + kTagBytes, kVnet + kMacBytes);
      uint8_t* tag = slot + kVnet + kMacBytes;
      tag[0] = static_cast<uint8_t>(tpid >> 8);
      tag[1] = static_cast<uint8_t>(tpid);
      tag[2] = static_cast<uint8_t>(tci >> 8);
      tag[3] = static_cast<uint8_t>(tci);
      start = kFrameStart - kTagBytes;
      captured += kTagBytes;
      wire += kTagBytes;
      VnetHeader* vnet = reinterpret_cast<VnetHeader*>(slot);
      if ((vnet->flags & kNeedsCsum) != 0) vnet->csum_start = static_cast<uint16_t>(vnet->csum_start + kTagBytes);
    }
    lengths_[i * 2] = captured;
    lengths_[i * 2 + 1] = wire;
    meta_[i] = static_cast<uint16_t>(start);
    meta_[slots_ + i] = Segments(slot + start - kVnet, slot + start, captured);
  }

  static const tpacket_auxdata* Aux(msghdr& m) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA &&
          c->cmsg_len >= CMSG_LEN(sizeof(tpacket_auxdata))) {
        return reinterpret_cast<const tpacket_auxdata*>(CMSG_DATA(c));
      }
    }
    return nullptr;
  }

  // How many frames a super-frame stands for once segmented (1 for a plain frame). Its headers end
  // after the L4 header, which starts at the checksum start when the checksum is partial (a host's
  // TSO/GSO), else (frames merged by GRO on the port) after the IP header. hdr_len is set to them:
  // the kernel hands over the skb's linear length there, which would make the send side allocate
  // it all linear.
  static uint16_t Segments(uint8_t* vnet_bytes, const uint8_t* frame, uint32_t length) {
    VnetHeader* vnet = reinterpret_cast<VnetHeader*>(vnet_bytes);
    uint8_t type = vnet->gso_type & static_cast<uint8_t>(~kGsoEcn);
    if (type == kGsoNone || vnet->gso_size == 0) return 1;
    uint32_t l4 = (vnet->flags & kNeedsCsum) != 0 ? vnet->csum_start : L4Offset(frame, length);
    uint32_t headers = 0;
    bool tcp = type == kGsoTcpV4 || type == kGsoTcpV6;
    if (l4 == 0) headers = 0;
    else if (tcp && l4 + 13 <= length) headers = l4 + (frame[l4 + 12] >> 4) * 4u;
    else if (type == kGsoUdpL4 || type == kGsoUdp) headers = l4 + 8;
    if (headers > length) headers = 0;
    if (headers > 0) vnet->hdr_len = static_cast<uint16_t>(headers);
    uint32_t segments = (length - headers + vnet->gso_size - 1) / vnet->gso_size;
    return static_cast<uint16_t>(segments < 1 ? 1 : segments > 65535 ? 65535 : segments);
  }

  // Where the L4 header of an IPv4 or IPv6 frame (up to two VLAN tags) starts; 0 when not found.
  // Only for super-frames, which carry TCP or UDP right after the IP header.
  static uint32_t L4Offset(const uint8_t* frame, uint32_t length) {
    uint32_t at = 12;
    for (int tags = 0; tags < 3 && at + 2 <= length; tags++) {
      uint16_t type = static_cast<uint16_t>(frame[at] << 8 | frame[at + 1]);
      if (type == ETH_P_8021Q || type == ETH_P_8021AD) {
        at += 4;
        continue;
      }
      if (type == ETH_P_IP && at + 3 <= length) return at + 2 + (frame[at + 2] & 15u) * 4;
      if (type == ETH_P_IPV6) return at + 2 + 40;
      return 0;
    }
    return 0;
  }

  // queue(buffer, frames, count): frames holds (offset, length) pairs into buffer, each frame with
  // its vnet header in the kVnet bytes before it. Without a send thread they are sent now; with one
  // they are copied to its queue, in order. Either way buffer may be reused as soon as this returns.
  Napi::Value Queue(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const uint8_t* data;
    const uint32_t* pairs;
    uint32_t count;
    if (!FramesArgument(info, kVnet, &data, &pairs, &count)) return env.Undefined();
    if (!sender_.joinable()) {
      SendInline(data, pairs, count);
      return env.Undefined();
    }
    SendBatch* batch = nullptr;
    for (uint32_t i = 0; i < count; i++) {
      uint32_t length = pairs[i * 2 + 1] + kVnet;
      if (batch != nullptr && (batch->count == batch->messages.size() || batch->used + length > batch->bytes.size())) {
        Submit();
        batch = nullptr;
      }
      if (batch == nullptr) batch = FreeBatch();
      if (length > batch->bytes.size()) {  // larger than a 64 KiB super-frame: refuse it
        std::lock_guard<std::mutex> lock(mutex_);
        refused_++;
        continue;
      }
      memcpy(batch->bytes.data() + batch->used, data + pairs[i * 2] - kVnet, length);
      batch->iovecs[batch->count].iov_base = batch->bytes.data() + batch->used;
      batch->iovecs[batch->count].iov_len = length;
      batch->used += length;
      batch->frame_bytes += pairs[i * 2 + 1];
      batch->count++;
    }
    if (batch != nullptr) Submit();
    return env.Undefined();
  }

  void SendInline(const uint8_t* data, const uint32_t* pairs, uint32_t count) {
    SendBatch& batch = inline_batch_;
    if (batch.iovecs.size() < count) {
      batch.iovecs.resize(count);
      batch.messages.resize(count);
    }
    batch.frame_bytes = 0;
    for (uint32_t i = 0; i < count; i++) {
      batch.iovecs[i].iov_base = const_cast<uint8_t*>(data + pairs[i * 2] - kVnet);
      batch.iovecs[i].iov_len = pairs[i * 2 + 1] + kVnet;
      batch.frame_bytes += pairs[i * 2 + 1];
    }
    batch.count = count;
    SendFrames(batch, true);
  }

  // sendNow(buffer, frames, 1): sends one frame, with a zero vnet header (a complete frame of our
  // own), on the calling thread; returns true when the kernel took it.
  Napi::Value SendNow(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const uint8_t* data;
    const uint32_t* pairs;
    uint32_t count;
    if (!FramesArgument(info, 0, &data, &pairs, &count)) return env.Undefined();
    if (count != 1) return Throw(env, "sendNow sends exactly one frame");
    static const VnetHeader zero{};
    iovec iov[2] = {{const_cast<VnetHeader*>(&zero), kVnet}, {const_cast<uint8_t*>(data + pairs[0]), pairs[1]}};
    msghdr m{};
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    ssize_t sent;
    do {
      sent = sendmsg(send_fd_, &m, 0);
    } while (sent < 0 && errno == EINTR);
    return Napi::Boolean::New(env, sent >= 0);
  }

  // Checks (buffer, frames, count); every frame must lie in buffer with `before` bytes ahead of it.
  bool FramesArgument(const Napi::CallbackInfo& info, uint32_t before, const uint8_t** data, const uint32_t** pairs,
      uint32_t* count) {
    Napi::Env env = info.Env();
    if (fd_ < 0 || closing_) {
      Throw(env, "port not open");
      return false;
    }
    if (info.Length() < 3 || !info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[2].IsNumber() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
        info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
      Throw(env, "expected (buffer: Uint8Array, frames: Uint32Array, count)");
      return false;
    }
    Napi::Uint8Array buffer = info[0].As<Napi::Uint8Array>();
    Napi::Uint32Array frames = info[1].As<Napi::Uint32Array>();
    *count = info[2].As<Napi::Number>().Uint32Value();
    if (static_cast<size_t>(*count) * 2 > frames.ElementLength()) {
      Throw(env, "count exceeds frames");
      return false;
    }
    size_t size = buffer.ByteLength();
    for (uint32_t i = 0; i < *count; i++) {
      uint32_t offset = frames[i * 2];
      uint32_t length = frames[i * 2 + 1];
      if (offset < before || offset > size || length > size - offset) {
        Throw(env, "frame outside the buffer");
        return false;
      }
    }
    *data = buffer.Data();
    *pairs = frames.Data();
    return true;
  }

  // The batch being filled: waits (back pressure) while the send thread still holds every batch.
  SendBatch* FreeBatch() {
    std::unique_lock<std::mutex> lock(mutex_);
    space_.wait(lock, [this] { return queued_ < kSendQueueDepth; });
    SendBatch* batch = &send_batches_[(head_ + queued_) % kSendQueueDepth];
    batch->used = 0;
    batch->frame_bytes = 0;
    batch->count = 0;
    return batch;
  }

  void Submit() {
    std::lock_guard<std::mutex> lock(mutex_);
    queued_++;
    ready_.notify_one();
  }

  void SendLoop() {
    for (;;) {
      SendBatch* batch;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return queued_ > 0 || stopping_; });
        if (queued_ == 0) return;  // stopping, and everything queued has been sent
        batch = &send_batches_[head_];
      }
      SendFrames(*batch, false);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        head_ = (head_ + 1) % kSendQueueDepth;
        queued_--;
        space_.notify_one();
      }
    }
  }

  // Sends a batch with sendmmsg(), in order, and adds the outcome to what onSent() reports next:
  // at the end of the receive wakeup it is sent in (`on_loop`), else on the next loop turn.
  void SendFrames(SendBatch& batch, bool on_loop) {
    uint32_t count = batch.count;
    for (uint32_t i = 0; i < count; i++) {
      memset(&batch.messages[i], 0, sizeof(mmsghdr));
      batch.messages[i].msg_hdr.msg_iov = &batch.iovecs[i];
      batch.messages[i].msg_hdr.msg_iovlen = 1;
    }
    uint32_t done = 0;
    uint32_t refused = 0;
    double refused_bytes = 0;
    while (done < count) {
      int sent = sendmmsg(send_fd_, &batch.messages[done], count - done, 0);
      if (sent > 0) {
        done += static_cast<uint32_t>(sent);
      } else if (sent < 0 && errno == EINTR) {
        continue;
      } else {  // this frame was refused (EMSGSIZE, ENOBUFS, ENETDOWN, ...): count it and go on
        refused++;
        refused_bytes += static_cast<double>(batch.iovecs[done].iov_len - kVnet);
        done++;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      sent_frames_ += count - refused;
      sent_bytes_ += batch.frame_bytes - refused_bytes;
      refused_ += refused;
    }
    if (!on_loop || !InWakeup()) {
      uv_async_send(&sent_async_);
    } else if (!report_queued_) {
      report_queued_ = true;
      Unreported().push_back(this);
    }
  }

  // On the event loop: report what was sent since the last report.
  static void OnSentAsync(uv_async_t* handle) {
    BatchPort* self = static_cast<BatchPort*>(handle->data);
    double frames;
    double bytes;
    double refused;
    {
      std::lock_guard<std::mutex> lock(self->mutex_);
      frames = self->sent_frames_;
      bytes = self->sent_bytes_;
      refused = self->refused_;
      self->sent_frames_ = self->sent_bytes_ = self->refused_ = 0;
    }
    if (frames == 0 && refused == 0) return;
    Napi::Env env(self->env_);
    Napi::HandleScope scope(env);
    self->on_sent_.MakeCallback(env.Global(),
        {Napi::Number::New(env, frames), Napi::Number::New(env, bytes), Napi::Number::New(env, refused)}, *self->context_);
    self->Healthy(env);
  }

  // An exception in the packet loop is a bug: surface it like any uncaught exception.
  bool Healthy(Napi::Env env) {
    if (!env.IsExceptionPending()) return true;
    napi_fatal_exception(env, env.GetAndClearPendingException().Value());
    return false;
  }

  // Stops receiving, sends what is queued, reports it, then closes the sockets.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (fd_ >= 0 && !closing_) {
      closing_ = true;
      std::vector<BatchPort*>& unreported = Unreported();
      for (size_t i = 0; i < unreported.size(); i++) {
        if (unreported[i] == this) unreported.erase(unreported.begin() + static_cast<long>(i));
      }
      report_queued_ = false;
      std::vector<BatchPort*>& open = OpenPorts();
      for (size_t i = 0; i < open.size(); i++) {
        if (open[i] == this) open.erase(open.begin() + static_cast<long>(i));
      }
      BusyPoll().idle_ns = LongestBusyPoll();
      BusyPoll().warm_ns = ShortestWarm();
      if (open.empty() && BusyPoll().active) {
        uv_idle_stop(&BusyPoll().idle);
        BusyPoll().active = false;
      }
      StopSender();
      OnSentAsync(&sent_async_);
      uv_poll_stop(&poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(&poll_), OnClosed);
      uv_close(reinterpret_cast<uv_handle_t*>(&sent_async_), OnClosed);
    }
    return info.Env().Undefined();
  }

  // Lets the send thread finish what is queued, then waits for it.
  void StopSender() {
    if (!sender_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      ready_.notify_one();
    }
    sender_.join();
  }

  static void OnClosed(uv_handle_t* handle) {
    BatchPort* self = static_cast<BatchPort*>(handle->data);
    if (++self->handles_closed_ < 2) return;
    self->CloseRing(self->fd_);
    self->fd_ = -1;
    close(self->send_fd_);
    self->send_fd_ = -1;
    self->send_batches_.clear();
    self->rx_ref_.Reset();
    self->lengths_ref_.Reset();
    self->meta_ref_.Reset();
    self->on_batch_.Reset();
    self->on_sent_.Reset();
    self->context_.reset();
    self->Unref();
  }

  // Frames the kernel dropped on packet socket `fd` since the last read: PACKET_STATISTICS resets
  // on every read, so the caller accumulates. tp_drops counts each frame the ring (or receive queue)
  // had no room for; on TPACKET_V3 (libpcap's ring) it also covers the frames lost while a block
  // was frozen, so tp_freeze_q_cnt, a count of freezes, not of frames, is not added. -1 when `fd`
  // is not a packet socket.
  static double ReadDrops(int fd) {
    tpacket_stats_v3 stats{};  // tpacket_stats plus tp_freeze_q_cnt: the kernel copies what its version has
    socklen_t length = sizeof(stats);
    if (fd < 0 || getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &stats, &length) != 0) return -1;
    return stats.tp_drops;
  }

  // kernelDrops(): frames dropped by the receive ring since the last call (0 once closed).
  Napi::Value KernelDrops(const Napi::CallbackInfo& info) {
    double drops = closing_ ? -1 : ReadDrops(fd_);
    return Napi::Number::New(info.Env(), drops < 0 ? 0 : drops);
  }

  // receiveSocket(): the receive socket's descriptor, for the fast path's filter (-1 once closed).
  Napi::Value ReceiveSocket(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), closing_ ? -1 : fd_);
  }

  // packetDrops(fd): the same for another packet socket of this process (cap's); -1 when it is none.
  static Napi::Value PacketDrops(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) return Throw(env, "packetDrops(fd)");
    return Napi::Number::New(env, ReadDrops(info[0].As<Napi::Number>().Int32Value()));
  }

  static Napi::Value Throw(Napi::Env env, const std::string& message) {
    Napi::Error::New(env, message).ThrowAsJavaScriptException();
    return env.Undefined();
  }

  int fd_ = -1;
  int send_fd_ = -1;
  bool closing_ = false;
  int handles_closed_ = 0;
  uv_poll_t poll_{};
  uv_async_t sent_async_{};
  napi_env env_ = nullptr;
  // Receive batch.
  uint8_t* rx_ = nullptr;
  uint32_t* lengths_ = nullptr;
  // Frame i starts at meta_[i] in its slot and stands for meta_[slots_ + i] segments.
  uint16_t* meta_ = nullptr;
  uint32_t slot_bytes_ = 0;
  int slots_ = 0;
  // After a receive wakeup, how long the rings are polled for another frame (-1: not at all).
  int64_t busy_poll_ns_ = -1;
  // While polling, how long the rings stay empty before this port's onBatch(0) (0: never).
  int64_t warm_ns_ = 0;
  Ring ring_;
  std::vector<RxSlot> rx_slots_;
  std::vector<mmsghdr> rx_messages_;
  Napi::ObjectReference rx_ref_;
  Napi::ObjectReference lengths_ref_;
  Napi::ObjectReference meta_ref_;
  Napi::FunctionReference on_batch_;
  Napi::FunctionReference on_sent_;
  std::unique_ptr<Napi::AsyncContext> context_;
  // Send queue: a ring of kSendQueueDepth batches; head_ is the oldest, queued_ how many wait.
  std::vector<SendBatch> send_batches_;
  // Frames sent on the event loop's thread (no send thread): iovecs into the caller's buffer.
  SendBatch inline_batch_;
  std::thread sender_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::condition_variable space_;
  int head_ = 0;
  int queued_ = 0;
  // In Unreported(): sent on the event loop during a receive wakeup, reported at its end.
  bool report_queued_ = false;
  bool stopping_ = false;
  double sent_frames_ = 0;
  double sent_bytes_ = 0;
  double refused_ = 0;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  return BatchPort::Init(env, exports);
}

}  // namespace

NODE_API_MODULE(batch_port, Init)
