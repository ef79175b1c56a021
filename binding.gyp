{
  "targets": [
    {
      "target_name": "peercred",
      "sources": [
        "native/peercred/peercred.cc",
        "native/peercred/pidfd.cc",
        "native/peercred/unix_diag.cc",
        "native/peercred/fd_scan.cc"
      ],
      "cflags_cc": ["-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
