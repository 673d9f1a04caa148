// Batched I/O for one appliance data port. Capture stays libpcap (immediate mode, promiscuous, big
// kernel ring); the difference from `cap` is the batching:
// - receive: on each readable event up to `slots` frames are copied into one shared buffer (fixed
//   size slots, lengths in a Uint32Array) and JS is called once per batch;
// - send: JS hands over the frames of a batch in one call and they leave with one sendmmsg().
//   Either right away on the event loop's thread, or, with a send thread, copied to a queue that
//   the port's own thread sends from. Sending costs the kernel far more than deciding (skb, driver
//   and, on veth, the receiving host's whole stack), so on a box with cores to spare the thread
//   lets it run beside the event loop; where cores are scarce the hand-over costs more than it
//   gives (measured on 2 cores). Either way the outcome comes back to JS through onSent().
// Frames leave through a second packet socket that only sends; the capture takes inbound frames
// only (PACKET_IGNORE_OUTGOING, and libpcap's direction filter), so nothing sent here is seen again.

#include <napi.h>
#include <pcap/pcap.h>
#include <uv.h>

#include <errno.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>
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
// Send batches queued for the send thread before the event loop waits for it (back pressure).
constexpr int kSendQueueDepth = 8;

// Frames waiting for the send thread, copied back to back.
struct SendBatch {
  std::vector<uint8_t> bytes;
  std::vector<iovec> iovecs;
  std::vector<mmsghdr> messages;
  size_t used = 0;
  uint32_t count = 0;
};

class BatchPort : public Napi::ObjectWrap<BatchPort> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "BatchPort", {
      InstanceMethod("open", &BatchPort::Open),
      InstanceMethod("queue", &BatchPort::Queue),
      InstanceMethod("sendNow", &BatchPort::SendNow),
      InstanceMethod("close", &BatchPort::Close),
    });
    exports.Set("BatchPort", ctor);
    return exports;
  }

  explicit BatchPort(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BatchPort>(info) {}

  // Reached without close() only when Node.js tears down with the port open (process.exit()).
  ~BatchPort() override {
    StopSender();
    if (pcap_ != nullptr) pcap_close(pcap_);
    if (send_fd_ >= 0) close(send_fd_);
  }

 private:
  // open(device, ringBytes, rxBuffer, rxLengths, slotBytes, sendBatchBytes, onBatch, onSent, sendThread)
  Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (pcap_ != nullptr) return Throw(env, "port already open");
    if (info.Length() < 9 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsBuffer() ||
        !info[3].IsTypedArray() || !info[4].IsNumber() || !info[5].IsNumber() || !info[6].IsFunction() ||
        !info[7].IsFunction() || !info[8].IsBoolean()) {
      return Throw(env, "open(device, ringBytes, rxBuffer, rxLengths, slotBytes, sendBatchBytes, onBatch, onSent, sendThread)");
    }
    std::string device = info[0].As<Napi::String>();
    int ring_bytes = info[1].As<Napi::Number>().Int32Value();
    Napi::Buffer<uint8_t> rx = info[2].As<Napi::Buffer<uint8_t>>();
    Napi::TypedArray lengths_array = info[3].As<Napi::TypedArray>();
    slot_bytes_ = info[4].As<Napi::Number>().Uint32Value();
    size_t send_batch_bytes = info[5].As<Napi::Number>().Uint32Value();
    if (lengths_array.TypedArrayType() != napi_uint32_array) return Throw(env, "rxLengths must be a Uint32Array");
    Napi::Uint32Array lengths = lengths_array.As<Napi::Uint32Array>();
    if (slot_bytes_ < 64) return Throw(env, "slotBytes must be at least 64");
    slots_ = static_cast<int>(rx.Length() / slot_bytes_);
    if (slots_ < 1 || lengths.ElementLength() < static_cast<size_t>(slots_) * 2) {
      return Throw(env, "rxBuffer must hold at least one slot and rxLengths two numbers per slot");
    }
    if (send_batch_bytes < 65536) return Throw(env, "sendBatchBytes must be at least 65536");

    char errbuf[PCAP_ERRBUF_SIZE] = "";
    pcap_t* p = pcap_create(device.c_str(), errbuf);
    if (p == nullptr) return Throw(env, std::string("pcap_create: ") + errbuf);
    // Immediate mode: frames are handed over as they arrive, not when a ring block fills or times out.
    if (pcap_set_snaplen(p, static_cast<int>(slot_bytes_)) != 0 || pcap_set_promisc(p, 1) != 0 ||
        pcap_set_immediate_mode(p, 1) != 0 || pcap_set_buffer_size(p, ring_bytes) != 0) {
      pcap_close(p);
      return Throw(env, "pcap: cannot set capture options");
    }
    if (pcap_activate(p) < 0) {
      std::string why = pcap_geterr(p);
      pcap_close(p);
      return Throw(env, "pcap_activate: " + why);
    }
    if (pcap_setnonblock(p, 1, errbuf) != 0) {
      pcap_close(p);
      return Throw(env, std::string("pcap_setnonblock: ") + errbuf);
    }
    fd_ = pcap_get_selectable_fd(p);
    if (fd_ < 0) {
      pcap_close(p);
      return Throw(env, "pcap: no selectable descriptor");
    }
    // The capture takes only what arrives: frames that leave the port (sent by us or anyone else on
    // the box) are not copied into the ring (PACKET_IGNORE_OUTGOING; libpcap also filters them).
    if (pcap_setdirection(p, PCAP_D_IN) != 0) {
      std::string why = pcap_geterr(p);
      pcap_close(p);
      return Throw(env, "pcap_setdirection: " + why);
    }
    int one = 1;
    setsockopt(fd_, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
    // Frames leave through a socket of their own, bound to the port with protocol 0: it receives
    // nothing, and since nothing waits on it the kernel skips the write-space wakeup it would
    // otherwise attempt on the capture's wait queue (the event loop's epoll) for every frame sent.
    send_fd_ = OpenSendSocket(device);
    if (send_fd_ < 0) {
      std::string why = strerror(errno);
      pcap_close(p);
      return Throw(env, "send socket for " + device + ": " + why);
    }
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    if (uv_poll_init(loop, &poll_, fd_) != 0 || uv_async_init(loop, &sent_async_, OnSentAsync) != 0) {
      close(send_fd_);
      send_fd_ = -1;
      pcap_close(p);
      return Throw(env, "libuv: cannot watch the capture");
    }
    bool send_thread = info[8].As<Napi::Boolean>().Value();
    if (send_thread) {
      send_batches_.resize(kSendQueueDepth);
      for (SendBatch& batch : send_batches_) {
        batch.bytes.resize(send_batch_bytes);
        batch.iovecs.resize(static_cast<size_t>(slots_));
        batch.messages.resize(static_cast<size_t>(slots_));
      }
    }
    pcap_ = p;
    env_ = env;
    rx_ = rx.Data();
    lengths_ = lengths.Data();
    rx_ref_ = Napi::Persistent(rx.As<Napi::Object>());
    lengths_ref_ = Napi::Persistent(lengths.As<Napi::Object>());
    on_batch_ = Napi::Persistent(info[6].As<Napi::Function>());
    on_sent_ = Napi::Persistent(info[7].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "gatekeeper:port");
    poll_.data = this;
    sent_async_.data = this;
    Ref();  // the open port stays alive until its handles are closed
    uv_poll_start(&poll_, UV_READABLE, OnReadable);
    if (send_thread) sender_ = std::thread(&BatchPort::SendLoop, this);
    return env.Undefined();
  }

  static int OpenSendSocket(const std::string& device) {
    unsigned int ifindex = if_nametoindex(device.c_str());
    if (ifindex == 0) return -1;
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_ll address{};
    address.sll_family = AF_PACKET;
    address.sll_protocol = 0;  // bound for sending only: no receive hook
    address.sll_ifindex = static_cast<int>(ifindex);
    if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      int saved = errno;
      close(fd);
      errno = saved;
      return -1;
    }
    return fd;
  }

  static void OnFrame(u_char* user, const pcap_pkthdr* header, const u_char* bytes) {
    BatchPort* self = reinterpret_cast<BatchPort*>(user);
    uint32_t captured = header->caplen < self->slot_bytes_ ? header->caplen : self->slot_bytes_;
    memcpy(self->rx_ + static_cast<size_t>(self->batch_) * self->slot_bytes_, bytes, captured);
    self->lengths_[self->batch_ * 2] = captured;
    self->lengths_[self->batch_ * 2 + 1] = header->len;
    self->batch_++;
  }

  static void OnReadable(uv_poll_t* handle, int status, int /*events*/) {
    BatchPort* self = static_cast<BatchPort*>(handle->data);
    if (status < 0 || self->closing_) return;
    Napi::Env env(self->env_);
    Napi::HandleScope scope(env);
    for (int round = 0; round < kBatchesPerWakeup && !self->closing_; round++) {
      self->batch_ = 0;
      int n = pcap_dispatch(self->pcap_, self->slots_, OnFrame, reinterpret_cast<u_char*>(self));
      if (self->batch_ > 0) {
        self->on_batch_.MakeCallback(env.Global(), {Napi::Number::New(env, self->batch_)}, *self->context_);
        if (!self->Healthy(env)) return;
      }
      if (n < self->slots_) break;  // the ring is empty (or the capture failed: the next wakeup says so)
    }
  }

  // queue(buffer, frames, count): frames holds (offset, length) pairs into buffer. Without a send
  // thread they are sent now; with one they are copied to its queue, in order. Either way buffer
  // may be reused as soon as this returns.
  Napi::Value Queue(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const uint8_t* data;
    const uint32_t* pairs;
    uint32_t count;
    if (!FramesArgument(info, &data, &pairs, &count)) return env.Undefined();
    if (!sender_.joinable()) {
      SendInline(data, pairs, count);
      return env.Undefined();
    }
    SendBatch* batch = nullptr;
    for (uint32_t i = 0; i < count; i++) {
      uint32_t length = pairs[i * 2 + 1];
      if (batch != nullptr && (batch->count == batch->messages.size() || batch->used + length > batch->bytes.size())) {
        Submit();
        batch = nullptr;
      }
      if (batch == nullptr) batch = FreeBatch();
      if (length > batch->bytes.size()) {  // cannot happen with slots no larger than a batch: refuse it
        std::lock_guard<std::mutex> lock(mutex_);
        refused_++;
        continue;
      }
      memcpy(batch->bytes.data() + batch->used, data + pairs[i * 2], length);
      batch->iovecs[batch->count].iov_base = batch->bytes.data() + batch->used;
      batch->iovecs[batch->count].iov_len = length;
      batch->used += length;
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
    batch.used = 0;
    for (uint32_t i = 0; i < count; i++) {
      batch.iovecs[i].iov_base = const_cast<uint8_t*>(data + pairs[i * 2]);
      batch.iovecs[i].iov_len = pairs[i * 2 + 1];
      batch.used += pairs[i * 2 + 1];
    }
    batch.count = count;
    SendFrames(batch);
  }

  // sendNow(buffer, frames, 1): sends one frame on the calling thread; returns true when the kernel took it.
  Napi::Value SendNow(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const uint8_t* data;
    const uint32_t* pairs;
    uint32_t count;
    if (!FramesArgument(info, &data, &pairs, &count)) return env.Undefined();
    if (count != 1) return Throw(env, "sendNow sends exactly one frame");
    ssize_t sent;
    do {
      sent = send(send_fd_, data + pairs[0], pairs[1], 0);
    } while (sent < 0 && errno == EINTR);
    return Napi::Boolean::New(env, sent >= 0);
  }

  bool FramesArgument(const Napi::CallbackInfo& info, const uint8_t** data, const uint32_t** pairs, uint32_t* count) {
    Napi::Env env = info.Env();
    if (pcap_ == nullptr || closing_) {
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
      if (offset > size || length > size - offset) {
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
      SendFrames(*batch);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        head_ = (head_ + 1) % kSendQueueDepth;
        queued_--;
        space_.notify_one();
      }
    }
  }

  // Sends a batch with sendmmsg(), in order, and adds the outcome to what onSent() reports next.
  void SendFrames(SendBatch& batch) {
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
        refused_bytes += static_cast<double>(batch.iovecs[done].iov_len);
        done++;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      sent_frames_ += count - refused;
      sent_bytes_ += static_cast<double>(batch.used) - refused_bytes;
      refused_ += refused;
    }
    uv_async_send(&sent_async_);
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

  // Stops capturing, sends what is queued, reports it, then releases the capture.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (pcap_ != nullptr && !closing_) {
      closing_ = true;
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
    pcap_close(self->pcap_);
    self->pcap_ = nullptr;
    close(self->send_fd_);
    self->send_fd_ = -1;
    self->send_batches_.clear();
    self->rx_ref_.Reset();
    self->lengths_ref_.Reset();
    self->on_batch_.Reset();
    self->on_sent_.Reset();
    self->context_.reset();
    self->Unref();
  }

  static Napi::Value Throw(Napi::Env env, const std::string& message) {
    Napi::Error::New(env, message).ThrowAsJavaScriptException();
    return env.Undefined();
  }

  pcap_t* pcap_ = nullptr;
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
  uint32_t slot_bytes_ = 0;
  int slots_ = 0;
  int batch_ = 0;
  Napi::ObjectReference rx_ref_;
  Napi::ObjectReference lengths_ref_;
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
