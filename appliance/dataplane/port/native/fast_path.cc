// Loader of the kernel fast path (fast_path.bpf.c) for one port pair, with libbpf: loads the
// object, attaches fp_redirect to both ports' tcx ingress (a BPF link: it goes when this process
// ends, however it ends) and fp_filter to both ports' receive sockets (which go with it too), and
// gives JS the few operations the dataplane needs: offload one direction of a flow from a frame it
// just forwarded (the key parsed from that frame by the parser the kernel runs), forget a flow,
// start a new generation (a policy change: every offloaded flow goes back to the dataplane at its
// next frame), the per-flow counters as shared memory, and the per-port counters.
// Must not decide what is offloaded (the engine does) nor hold flow state beyond the keys it
// installed.

#include <napi.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>
#include <vector>

// The parser reads the frame the dataplane just forwarded.
struct FrameBytes {
  const uint8_t* bytes;
  uint32_t length;
};
#define FP_CTX const FrameBytes*
static inline int fp_load(const FrameBytes* frame, uint32_t offset, void* to, uint32_t bytes) {
  if (offset > frame->length || bytes > frame->length - offset) return -1;
  memcpy(to, frame->bytes + offset, bytes);
  return 0;
}
#include "fast_path_frame.h"

namespace {

// enum bpf_attach_type of Linux 6.6 (Debian 12's linux/bpf.h is 6.1's and lacks it).
constexpr uint32_t kTcxIngress = 46;
#ifndef SO_ATTACH_BPF
#define SO_ATTACH_BPF 50
#endif

// libbpf's messages (the verifier's log among them) end up in the reason a load failed.
std::string& LibbpfLog() {
  static std::string log;
  return log;
}

int CollectLibbpfLog(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  // libbpf hands over the verifier's whole log in one message.
  static char line[65536];
  int n = vsnprintf(line, sizeof(line), format, args);
  // The verifier's reason is at the end of its log: keep the last 4 KiB.
  std::string& log = LibbpfLog();
  log.append(line);
  if (log.size() > 8192) log.erase(0, log.size() - 4096);
  return n;
}

// An offload waiting for commit(): the key, the entry, and its place in keys_ (slot * 2 + dir).
struct Staged {
  fp_key key;
  fp_entry entry;
  size_t at;
};

class FastPath : public Napi::ObjectWrap<FastPath> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "FastPath", {
      InstanceMethod("open", &FastPath::Open),
      InstanceMethod("offload", &FastPath::Offload),
      InstanceMethod("commit", &FastPath::Commit),
      InstanceMethod("forget", &FastPath::Forget),
      InstanceMethod("setGeneration", &FastPath::SetGeneration),
      InstanceMethod("slots", &FastPath::Slots),
      InstanceMethod("portCounters", &FastPath::PortCounters),
      InstanceMethod("close", &FastPath::Close),
    });
    exports.Set("FastPath", ctor);
    return exports;
  }

  explicit FastPath(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FastPath>(info) {}
  ~FastPath() override { Release(); }

 private:
  // open(objectPath, [insideDevice, outsideDevice], [insideReceiveFd, outsideReceiveFd]): the slot count.
  Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (object_ != nullptr) return Throw(env, "fast path already open");
    if (info.Length() < 3 || !info[0].IsString() || !info[1].IsArray() || !info[2].IsArray()) {
      return Throw(env, "open(objectPath, [inside, outside], [insideFd, outsideFd])");
    }
    std::string path = info[0].As<Napi::String>();
    Napi::Array devices = info[1].As<Napi::Array>();
    Napi::Array fds = info[2].As<Napi::Array>();
    for (uint32_t side = 0; side < 2; side++) {
      std::string device = devices.Get(side).As<Napi::String>();
      ifindex_[side] = if_nametoindex(device.c_str());
      if (ifindex_[side] == 0) return Throw(env, "no interface " + device);
      receive_fd_[side] = fds.Get(side).As<Napi::Number>().Int32Value();
    }
    std::string failure = Load(path);
    if (!failure.empty()) {
      Release();
      return Throw(env, failure);
    }
    return Napi::Number::New(env, slot_count_);
  }

  std::string Load(const std::string& path) {
    LibbpfLog().clear();
    libbpf_set_print(CollectLibbpfLog);
    object_ = bpf_object__open_file(path.c_str(), nullptr);
    if (libbpf_get_error(object_) != 0) {
      object_ = nullptr;
      return "cannot open " + path + ": " + strerror(errno) + Logged();
    }
    if (bpf_object__load(object_) != 0) return std::string("the kernel refused the programs: ") + strerror(errno) + Logged();
    bpf_program* filter = bpf_object__find_program_by_name(object_, "fp_filter");
    bpf_program* redirect = bpf_object__find_program_by_name(object_, "fp_redirect");
    flows_fd_ = bpf_object__find_map_fd_by_name(object_, "flows");
    int slots_fd = bpf_object__find_map_fd_by_name(object_, "slots");
    ports_fd_ = bpf_object__find_map_fd_by_name(object_, "ports");
    config_fd_ = bpf_object__find_map_fd_by_name(object_, "config");
    if (filter == nullptr || redirect == nullptr || flows_fd_ < 0 || slots_fd < 0 || ports_fd_ < 0 || config_fd_ < 0) {
      return "the object lacks a program or map it must have";
    }
    bpf_map* slots = bpf_object__find_map_by_name(object_, "slots");
    slot_count_ = bpf_map__max_entries(slots);
    slots_bytes_ = static_cast<size_t>(slot_count_) * sizeof(fp_slot);
    void* map = mmap(nullptr, slots_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, slots_fd, 0);
    if (map == MAP_FAILED) return std::string("cannot map the flow counters: ") + strerror(errno);
    slots_ = static_cast<uint8_t*>(map);
    keys_.assign(static_cast<size_t>(slot_count_) * 2, fp_key{});
    installed_.assign(static_cast<size_t>(slot_count_) * 2, 0);
    if (getrandom(&secret_, sizeof(secret_), 0) != sizeof(secret_)) return "no random secret";
    if (WriteConfig(false) != 0) return std::string("cannot write the configuration: ") + strerror(errno);
    // The redirect first, then the filters: a frame the filter keeps from the dataplane must find
    // the program that forwards it.
    for (int side = 0; side < 2; side++) {
      union bpf_attr attr;
      memset(&attr, 0, sizeof(attr));
      attr.link_create.prog_fd = static_cast<uint32_t>(bpf_program__fd(redirect));
      attr.link_create.target_fd = ifindex_[side];
      attr.link_create.attach_type = kTcxIngress;
      int link = static_cast<int>(syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr)));
      if (link < 0) {
        return std::string("cannot attach to tcx ingress (Linux 6.6 or later): ") + strerror(errno);
      }
      links_[side] = link;
    }
    int filter_fd = bpf_program__fd(filter);
    for (int side = 0; side < 2; side++) {
      if (setsockopt(receive_fd_[side], SOL_SOCKET, SO_ATTACH_BPF, &filter_fd, sizeof(filter_fd)) != 0) {
        return std::string("cannot attach the receive filter: ") + strerror(errno);
      }
      filtered_[side] = true;
    }
    if (WriteConfig(true) != 0) return std::string("cannot enable: ") + strerror(errno);
    return "";
  }

  std::string Logged() {
    std::string& log = LibbpfLog();
    return log.empty() ? "" : " (" + log + ")";
  }

  int WriteConfig(bool enabled) {
    fp_config config{};
    config.generation = generation_;
    config.secret = secret_;
    config.enabled = enabled ? 1 : 0;
    uint32_t zero = 0;
    return bpf_map_update_elem(config_fd_, &zero, &config, BPF_ANY);
  }

  // offload(frame, length, side, slot, dir): the direction `frame` (arrived on `side`) travels is
  // to be offloaded at the next commit(). 0 when staged, else the parser's reason it is not offloadable.
  Napi::Value Offload(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 5 || !info[0].IsTypedArray()) return Throw(env, "offload(frame, length, side, slot, dir)");
    Napi::Uint8Array frame = info[0].As<Napi::Uint8Array>();
    uint32_t length = info[1].As<Napi::Number>().Uint32Value();
    uint32_t side = info[2].As<Napi::Number>().Uint32Value() & 1;
    uint32_t slot = info[3].As<Napi::Number>().Uint32Value();
    uint32_t dir = info[4].As<Napi::Number>().Uint32Value() & 1;
    if (object_ == nullptr || slot >= slot_count_ || length > frame.ByteLength()) return Throw(env, "offload: not open, or slot or frame out of range");
    FrameBytes bytes{frame.Data(), length};
    Staged staged{};
    fp_frame parsed{};
    int why = fp_parse(&bytes, length, 0, 0, &parsed);
    if (why != 0) return Napi::Number::New(env, why);
    staged.key = parsed.key;
    staged.key.ifindex = ifindex_[side];
    staged.entry.slot = slot;
    staged.entry.egress = ifindex_[side ^ 1];
    staged.entry.dir = static_cast<uint8_t>(dir);
    staged.entry.port = static_cast<uint8_t>(side);
    memcpy(staged.entry.macs, parsed.macs, sizeof(staged.entry.macs));
    staged.at = static_cast<size_t>(slot) * 2 + dir;
    staged_.push_back(staged);
    return Napi::Number::New(env, 0);
  }

  // commit(): installs what offload() staged (after the batch those frames were in has left, so
  // that the flow's next frames, which the kernel forwards, do not overtake them). Returns how
  // many the kernel refused (its table full).
  Napi::Value Commit(const Napi::CallbackInfo& info) {
    double refused = 0;
    for (Staged& staged : staged_) {
      size_t at = staged.at;
      staged.entry.generation = generation_;
      // Another key for this slot and direction (other addresses or MACs are another entry): the old one goes.
      if (installed_[at] && memcmp(&keys_[at], &staged.key, sizeof(fp_key)) != 0) bpf_map_delete_elem(flows_fd_, &keys_[at]);
      if (bpf_map_update_elem(flows_fd_, &staged.key, &staged.entry, BPF_ANY) != 0) {
        installed_[at] = 0;
        refused++;
        continue;
      }
      keys_[at] = staged.key;
      installed_[at] = 1;
    }
    staged_.clear();
    return Napi::Number::New(info.Env(), refused);
  }

  // forget(slot): the slot's directions are no longer offloaded (also what was only staged).
  Napi::Value Forget(const Napi::CallbackInfo& info) {
    uint32_t slot = info[0].As<Napi::Number>().Uint32Value();
    if (object_ == nullptr || slot >= slot_count_) return info.Env().Undefined();
    size_t first = static_cast<size_t>(slot) * 2;
    for (size_t i = 0; i < staged_.size();) {
      if (staged_[i].at == first || staged_[i].at == first + 1) staged_.erase(staged_.begin() + static_cast<long>(i));
      else i++;
    }
    for (size_t at = first; at < first + 2; at++) {
      if (!installed_[at]) continue;
      bpf_map_delete_elem(flows_fd_, &keys_[at]);
      installed_[at] = 0;
    }
    return info.Env().Undefined();
  }

  // setGeneration(n): entries installed before are stale from now on, in the kernel at once.
  Napi::Value SetGeneration(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    generation_ = info[0].As<Napi::Number>().Uint32Value();
    if (object_ != nullptr && WriteConfig(true) != 0) return Throw(env, std::string("fast path generation: ") + strerror(errno));
    return env.Undefined();
  }

  // slots(): the per-flow counters (struct fp_slot[slotCount]) as an ArrayBuffer over the map.
  Napi::Value Slots(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (slots_ == nullptr) return Throw(env, "fast path not open");
    return Napi::ArrayBuffer::New(env, slots_, slots_bytes_);
  }

  // portCounters(): frames, frame bytes and segments forwarded from the inside port, then the same
  // of the outside port, summed over CPUs.
  Napi::Value PortCounters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env, 6);
    int cpus = libbpf_num_possible_cpus();
    std::vector<fp_port> values(cpus > 0 ? static_cast<size_t>(cpus) : 1);
    for (uint32_t port = 0; port < 2; port++) {
      double sums[3] = {0, 0, 0};
      if (object_ != nullptr && bpf_map_lookup_elem(ports_fd_, &port, values.data()) == 0) {
        for (const fp_port& v : values) {
          sums[0] += static_cast<double>(v.frames);
          sums[1] += static_cast<double>(v.frame_bytes);
          sums[2] += static_cast<double>(v.segments);
        }
      }
      for (uint32_t i = 0; i < 3; i++) out.Set(port * 3 + i, sums[i]);
    }
    return out;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  // Filters off first (the dataplane gets every frame again), then the redirects.
  void Release() {
    for (int side = 0; side < 2; side++) {
      if (filtered_[side]) {
        int unused = 0;
        setsockopt(receive_fd_[side], SOL_SOCKET, SO_DETACH_BPF, &unused, sizeof(unused));
        filtered_[side] = false;
      }
    }
    for (int side = 0; side < 2; side++) {
      if (links_[side] >= 0) close(links_[side]);
      links_[side] = -1;
    }
    // The ArrayBuffer JS holds over the slots stays mapped for the process's life: unmapping it
    // under JS would crash a late read.
    if (object_ != nullptr) bpf_object__close(object_);
    object_ = nullptr;
    staged_.clear();
  }

  static Napi::Value Throw(Napi::Env env, const std::string& message) {
    Napi::Error::New(env, message).ThrowAsJavaScriptException();
    return env.Undefined();
  }

  bpf_object* object_ = nullptr;
  unsigned int ifindex_[2] = {0, 0};
  int receive_fd_[2] = {-1, -1};
  bool filtered_[2] = {false, false};
  int links_[2] = {-1, -1};
  int flows_fd_ = -1;
  int ports_fd_ = -1;
  int config_fd_ = -1;
  uint8_t* slots_ = nullptr;
  size_t slots_bytes_ = 0;
  uint32_t slot_count_ = 0;
  uint32_t generation_ = 1;
  uint32_t secret_ = 0;
  std::vector<fp_key> keys_;
  std::vector<uint8_t> installed_;
  std::vector<Staged> staged_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  return FastPath::Init(env, exports);
}

}  // namespace

NODE_API_MODULE(fast_path, Init)
