// Shared by the files of the peercred addon: small N-API helpers and the functions each file exports.
#ifndef LANYARD_PEERCRED_ADDON_H
#define LANYARD_PEERCRED_ADDON_H

#include <node_api.h>

#include <stdint.h>

namespace lanyard {

// Throws an Error with `code` and `message`; returns nullptr for the caller to return.
napi_value Throw(napi_env env, const char* code, const char* message);
// Throws ERR_IO "<what>: <strerror(err)>" with the errno as `errno`.
napi_value ThrowErrno(napi_env env, const char* what, int err);
napi_value SetInt(napi_env env, napi_value obj, const char* name, int64_t v);
// The single non-negative int32 argument of a call (a descriptor or a pid); false after throwing.
bool IntArg(napi_env env, napi_callback_info info, const char* fn, int32_t* out);
napi_value Int(napi_env env, int64_t v);

// pidfd.cc
napi_value PeerPidfd(napi_env env, napi_callback_info info);
napi_value PidfdOpen(napi_env env, napi_callback_info info);
napi_value PidfdExited(napi_env env, napi_callback_info info);
// unix_diag.cc
napi_value PeerSocketInode(napi_env env, napi_callback_info info);
// fd_scan.cc
napi_value SocketHolders(napi_env env, napi_callback_info info);

}  // namespace lanyard

#endif
