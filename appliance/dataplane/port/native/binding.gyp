# The dataplane's native addons, built by image/build-native.sh during `npm run build`: batched port
# I/O (batch_port.cc) and the kernel fast path's loader (fast_path.cc, with libbpf; its BPF object,
# fast_path.bpf.c, is compiled by clang in build-native.sh).
{
  "targets": [
    {
      "target_name": "batch_port",
      "sources": ["batch_port.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2", "-std=c++17", "-Wall", "-Wextra"]
    },
    {
      "target_name": "fast_path",
      "sources": ["fast_path.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2", "-std=c++17", "-Wall", "-Wextra"],
      "libraries": ["-lbpf"]
    }
  ]
}
