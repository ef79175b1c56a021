// SO_PEERCRED for Node: the kernel's record of who connected to a Unix socket (pid, uid, gid at connect(2)
// time). Node has no built-in for it, and reading it later from /proc would race with the peer. Plain N-API
// (node_api.h), so the addon is ABI-stable across Node versions and needs no extra package.
#include <node_api.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

namespace {

napi_value Throw(napi_env env, const char* code, const char* message) {
  napi_throw_error(env, code, message);
  return nullptr;
}

napi_value SetInt(napi_env env, napi_value obj, const char* name, int64_t v) {
  napi_value value;
  if (napi_create_int64(env, v, &value) != napi_ok) return nullptr;
  if (napi_set_named_property(env, obj, name, value) != napi_ok) return nullptr;
  return obj;
}

// peercred(fd: number): { pid: number, uid: number, gid: number }
napi_value PeerCred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok) return nullptr;
  if (argc != 1) return Throw(env, "ERR_INVALID_ARGUMENT", "peercred(fd) takes one file descriptor");
  napi_valuetype type;
  if (napi_typeof(env, argv[0], &type) != napi_ok || type != napi_number) {
    return Throw(env, "ERR_INVALID_ARGUMENT", "peercred(fd): fd must be a number");
  }
  int32_t fd;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    return Throw(env, "ERR_INVALID_ARGUMENT", "peercred(fd): fd must be a non-negative integer");
  }
#if defined(SO_PEERCRED)
  struct ucred cred;
  socklen_t len = sizeof(cred);
  memset(&cred, 0, sizeof(cred));
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) {
    return Throw(env, "ERR_IO", strerror(errno));
  }
  napi_value out;
  if (napi_create_object(env, &out) != napi_ok) return nullptr;
  if (SetInt(env, out, "pid", cred.pid) == nullptr) return nullptr;
  if (SetInt(env, out, "uid", cred.uid) == nullptr) return nullptr;
  if (SetInt(env, out, "gid", cred.gid) == nullptr) return nullptr;
  return out;
#else
  return Throw(env, "ERR_UNSUPPORTED", "SO_PEERCRED is not available on this platform");
#endif
}

napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "peercred", NAPI_AUTO_LENGTH, PeerCred, nullptr, &fn) != napi_ok) return nullptr;
  if (napi_set_named_property(env, exports, "peercred", fn) != napi_ok) return nullptr;
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
