// Which processes hold a given socket: every /proc/<pid>/fd/<n> whose link reads socket:[<inode>], with
// whether that descriptor is close-on-exec (/proc/<pid>/fdinfo/<n>). Run on the libuv thread pool: a host
// with many processes has tens of thousands of descriptors, too many to readlink on the event loop.
//
// Seen: the descriptor tables of thread-group leaders the agent may read. Not seen: a table private to one
// thread (unshare(CLONE_FILES)), a descriptor in flight in an SCM_RIGHTS message, and processes whose /proc
// entries the agent may not read (counted in `unreadable`; none when the agent runs as root).
#include "addon.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vector>

namespace lanyard {

namespace {

struct Holder {
  int pid;
  int fd;
  int cloexec;  // 1, 0, or -1 when fdinfo could not be read
};

struct Scan {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  uint32_t inode = 0;
  std::vector<Holder> holders;
  int unreadable = 0;
  int err = 0;
};

bool Numeric(const char* s) {
  if (*s == '\0') return false;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return false;
  }
  return true;
}

// 1 when /proc/<pid>/fdinfo/<fd> has O_CLOEXEC in its flags, 0 when not, -1 when it cannot be read.
int CloseOnExec(int procfd, const char* pid, const char* fd) {
  char path[2 * NAME_MAX + 16];
  snprintf(path, sizeof(path), "%s/fdinfo/%s", pid, fd);
  int f = openat(procfd, path, O_RDONLY | O_CLOEXEC);
  if (f < 0) return -1;
  char buf[512];
  ssize_t n = read(f, buf, sizeof(buf) - 1);
  close(f);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* flags = strstr(buf, "flags:");
  if (flags == nullptr) return -1;
  unsigned long value = strtoul(flags + 6, nullptr, 8);
  return (value & O_CLOEXEC) != 0 ? 1 : 0;
}

void Execute(napi_env, void* data) {
  Scan* scan = static_cast<Scan*>(data);
  char target[48];
  int target_len = snprintf(target, sizeof(target), "socket:[%u]", scan->inode);
  int procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (procfd < 0) {
    scan->err = errno;
    return;
  }
  DIR* proc = fdopendir(fcntl(procfd, F_DUPFD_CLOEXEC, 0));
  if (proc == nullptr) {
    scan->err = errno;
    close(procfd);
    return;
  }
  char path[NAME_MAX + 16];
  char link[64];
  while (struct dirent* p = readdir(proc)) {
    if (!Numeric(p->d_name)) continue;
    snprintf(path, sizeof(path), "%s/fd", p->d_name);
    int dirfd = openat(procfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
      // ENOENT: the process exited meanwhile. EACCES/EPERM: another user's (or a non-dumpable) process.
      if (errno == EACCES || errno == EPERM) scan->unreadable++;
      continue;
    }
    DIR* fds = fdopendir(dirfd);
    if (fds == nullptr) {
      close(dirfd);
      continue;
    }
    while (struct dirent* f = readdir(fds)) {
      if (!Numeric(f->d_name)) continue;
      ssize_t n = readlinkat(dirfd, f->d_name, link, sizeof(link));
      if (n != target_len || memcmp(link, target, static_cast<size_t>(n)) != 0) continue;
      scan->holders.push_back({atoi(p->d_name), atoi(f->d_name), CloseOnExec(procfd, p->d_name, f->d_name)});
    }
    closedir(fds);
  }
  closedir(proc);
  close(procfd);
}

void Complete(napi_env env, napi_status status, void* data) {
  Scan* scan = static_cast<Scan*>(data);
  napi_value result = nullptr;
  bool ok = status == napi_ok && scan->err == 0;
  if (ok) {
    napi_value holders;
    ok = napi_create_object(env, &result) == napi_ok &&
         napi_create_array_with_length(env, scan->holders.size(), &holders) == napi_ok;
    for (size_t i = 0; ok && i < scan->holders.size(); i++) {
      const Holder& h = scan->holders[i];
      napi_value item;
      ok = napi_create_object(env, &item) == napi_ok && SetInt(env, item, "pid", h.pid) != nullptr &&
           SetInt(env, item, "fd", h.fd) != nullptr;
      if (ok && h.cloexec >= 0) {
        napi_value b;
        ok = napi_get_boolean(env, h.cloexec == 1, &b) == napi_ok &&
             napi_set_named_property(env, item, "cloexec", b) == napi_ok;
      }
      ok = ok && napi_set_element(env, holders, static_cast<uint32_t>(i), item) == napi_ok;
    }
    ok = ok && napi_set_named_property(env, result, "holders", holders) == napi_ok &&
         SetInt(env, result, "unreadable", scan->unreadable) != nullptr;
  }
  if (ok) {
    napi_resolve_deferred(env, scan->deferred, result);
  } else {
    char message[128];
    snprintf(message, sizeof(message), "scanning /proc/*/fd: %s", strerror(scan->err != 0 ? scan->err : EIO));
    napi_value code, msg, error;
    napi_create_string_utf8(env, "ERR_IO", NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, code, msg, &error);
    napi_reject_deferred(env, scan->deferred, error);
  }
  napi_delete_async_work(env, scan->work);
  delete scan;
}

}  // namespace

// socketHolders(inode): Promise<{ holders: { pid, fd, cloexec? }[], unreadable: number }>
napi_value SocketHolders(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  int64_t inode;
  napi_valuetype type;
  if (argc != 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_number ||
      napi_get_value_int64(env, argv[0], &inode) != napi_ok || inode <= 0 || inode > UINT32_MAX) {
    return Throw(env, "ERR_INVALID_ARGUMENT", "socketHolders(inode) takes a socket inode number");
  }
  Scan* scan = new Scan();
  scan->inode = static_cast<uint32_t>(inode);
  napi_value promise, name;
  if (napi_create_promise(env, &scan->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "lanyard:socketHolders", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, nullptr, name, Execute, Complete, scan, &scan->work) != napi_ok ||
      napi_queue_async_work(env, scan->work) != napi_ok) {
    delete scan;
    return Throw(env, "ERR_INTERNAL", "socketHolders: cannot queue the scan");
  }
  return promise;
}

}  // namespace lanyard
