;; What Wizer links for the `log` import while it runs the Go module's `_initialize` (build.sh):
;; Wizer links only WASI. Nothing may log during initialisation, so the stub traps; the snapshot
;; keeps the import, which the host provides at run time.
(module
  (func (export "log") (param i32 i32 i32 i32 i32)
    unreachable))
