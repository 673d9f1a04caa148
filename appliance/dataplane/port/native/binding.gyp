# Batched port I/O for the dataplane (see batch_port.cc). Built by image/build-native.sh during `npm run build`.
{
  "targets": [
    {
      "target_name": "batch_port",
      "sources": ["batch_port.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2", "-std=c++17", "-Wall", "-Wextra"]
    }
  ]
}
