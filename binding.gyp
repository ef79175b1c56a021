{
  "targets": [
    {
      "target_name": "peercred",
      "sources": ["native/peercred/peercred.cc"],
      "cflags_cc": ["-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
