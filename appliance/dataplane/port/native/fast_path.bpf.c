// The kernel fast path: frames of flows the dataplane decided and offloaded are forwarded by the
// kernel to the other port without reaching the dataplane. Two programs on each data port:
// - fp_filter, the receive socket's filter, runs first (packet taps run before tc ingress). For a
//   frame whose flow direction is in `flows` with the current generation, the same MAC addresses
//   and no SYN, FIN or RST, it counts the frame on the flow's slot and its port, leaves a token in
//   the frame's control block (cb[]: the egress port and the load's secret) and keeps the frame
//   from the dataplane's ring (returns 0). Everything else reaches the dataplane as before.
// - fp_redirect, on tcx ingress (after the taps), redirects exactly the frames carrying the token
//   to their egress port and passes all others on unchanged. One decision, made once, by the
//   filter: a flow added or removed between the two programs can neither duplicate nor lose a frame.
// The frame leaves as it came: a super-frame stays one (segmented by the egress port or its peer),
// a partial checksum stays partial. Both programs go when the dataplane's sockets and links close,
// so nothing is forwarded without a dataplane. Must not decide policy: it only repeats decisions.

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#define FP_CTX struct __sk_buff *
static inline int fp_load(struct __sk_buff *skb, __u32 offset, void *to, __u32 bytes) {
  return bpf_skb_load_bytes(skb, offset, to, bytes);
}
#include "fast_path_frame.h"

char LICENSE[] SEC("license") = "GPL";

// tcx return codes (linux/bpf.h of Linux 6.6; Debian 12's headers predate them).
#define FP_TCX_NEXT -1

#define FP_TOKEN 0x67617465  // "gate"

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(max_entries, 131072);
  __type(key, struct fp_key);
  __type(value, struct fp_entry);
} flows SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(map_flags, BPF_F_MMAPABLE);
  __uint(max_entries, 65536);
  __type(key, __u32);
  __type(value, struct fp_slot);
} slots SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, struct fp_port);
} ports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct fp_config);
} config SEC(".maps");

// What the parser makes of the frame (per CPU: too large for the stack beside the parser's buffers).
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct fp_frame);
} scratch SEC(".maps");

#define FP_DELIVER 0xffffffff

SEC("socket")
int fp_filter(struct __sk_buff *skb) {
  __u32 zero = 0;
  struct fp_config *cfg = bpf_map_lookup_elem(&config, &zero);
  if (!cfg || !cfg->enabled) return FP_DELIVER;
  if (skb->pkt_type == 4 /* PACKET_OUTGOING */) return FP_DELIVER;
  struct fp_frame *f = bpf_map_lookup_elem(&scratch, &zero);
  if (!f) return FP_DELIVER;
  if (fp_parse(skb, skb->len, skb->vlan_present, (__u16)skb->vlan_tci, f) != 0) return FP_DELIVER;
  if (f->tcp_flags & (FP_TCP_SYN | FP_TCP_FIN | FP_TCP_RST)) return FP_DELIVER;
  f->key.ifindex = skb->ifindex;
  struct fp_entry *e = bpf_map_lookup_elem(&flows, &f->key);
  if (!e || e->generation != cfg->generation) return FP_DELIVER;
  __u32 mac_diff = 0;
  FP_UNROLL for (int i = 0; i < 12; i++) mac_diff |= f->macs[i] ^ e->macs[i];
  if (mac_diff != 0) return FP_DELIVER;
  __u32 slot = e->slot;
  struct fp_slot *counters = bpf_map_lookup_elem(&slots, &slot);
  __u32 port = e->port;
  struct fp_port *port_counters = bpf_map_lookup_elem(&ports, &port);
  if (!counters || !port_counters) return FP_DELIVER;

  // Counted as the dataplane counts: segments, and wire bytes (a restored tag included; each
  // segment after a super-frame's first repeats its headers).
  __u32 length = skb->len + (skb->vlan_present ? 4 : 0);
  __u32 segments = 1;
  __u32 gso_size = skb->gso_size;
  if (gso_size > 0 && f->payload_bytes > gso_size) segments = (f->payload_bytes + gso_size - 1) / gso_size;
  __u64 bytes = (__u64)length + (__u64)(segments - 1) * (length - f->payload_bytes);
  __u32 dir = e->dir & 1;
  __sync_fetch_and_add(&counters->packets[dir], segments);
  __sync_fetch_and_add(&counters->bytes[dir], bytes);
  counters->last_ns[dir] = bpf_ktime_get_ns();
  port_counters->frames += 1;
  port_counters->frame_bytes += length;
  port_counters->segments += segments;

  skb->cb[0] = FP_TOKEN;
  skb->cb[1] = cfg->secret;
  skb->cb[2] = e->egress;
  return 0;
}

SEC("tc")
int fp_redirect(struct __sk_buff *skb) {
  if (skb->cb[0] != FP_TOKEN) return FP_TCX_NEXT;
  __u32 zero = 0;
  struct fp_config *cfg = bpf_map_lookup_elem(&config, &zero);
  if (!cfg || skb->cb[1] != cfg->secret) return FP_TCX_NEXT;
  __u32 egress = skb->cb[2];
  skb->cb[0] = 0;
  skb->cb[1] = 0;
  skb->cb[2] = 0;
  return bpf_redirect(egress, 0);
}
