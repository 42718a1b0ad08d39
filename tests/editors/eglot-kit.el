;;; eglot-kit.el --- What the eglot end-to-end tests share  -*- lexical-binding: t; -*-

;;; Commentary:

;; Loaded by eglot-lsp-test.el and eglot-runs-test.el: eglot loaded (or an
;; error saying how to install it), the scratch directory and Python the
;; Python side names in the environment, waiting on the server while its
;; output is pumped (batch Emacs has no command loop to do it), and a
;; buffer visiting a file connected to `flowmetal lsp', shut down afterwards
;; with the tail of the JSON-RPC exchange shown, for when a test fails.

;;; Code:

(require 'ert)

(eval-and-compile
  (load (expand-file-name "eglot-load.el" (file-name-directory (or load-file-name buffer-file-name)))
        nil t)
  (unless (flowmetal-test-load-eglot)
    (error "eglot is not available (apt-get install -y elpa-eglot)")))

(defun flowmetal-test-env (name)
  "The value of the environment variable NAME, which must be set."
  (or (getenv name) (error "%s is not set" name)))

(defun flowmetal-test-wait (predicate timeout)
  "Pump process output until PREDICATE is non-nil or TIMEOUT seconds pass.
Return the last value of PREDICATE."
  (let ((deadline (+ (float-time) timeout))
        value)
    (while (and (not (setq value (funcall predicate)))
                (< (float-time) deadline))
      (accept-process-output nil 0.05))
    value))

(defun flowmetal-test-connect (root contact)
  "Connect the current buffer to the server CONTACT starts, ROOT the project.
Return the server."
  (eglot '(flowmetal-mode) (cons 'transient root) 'eglot-lsp-server contact "flowmetal")
  (should (eglot-managed-p))
  (eglot-current-server))

(defun flowmetal-test--shut-down (buf)
  "Shut down BUF's server, if any, showing its JSON-RPC exchange; kill BUF.
An unanswered `shutdown' is an error."
  (let ((server (with-current-buffer buf (eglot-current-server))))
    (when server
      (let ((events (jsonrpc-events-buffer server)))
        (unwind-protect
            (eglot-shutdown server nil nil t)
          (with-current-buffer events
            (message "--- eglot events (last 8000 characters) ---\n%s"
                     (buffer-substring-no-properties
                      (max (point-min) (- (point-max) 8000)) (point-max))))
          (kill-buffer events)))))
  (with-current-buffer buf (set-buffer-modified-p nil))
  (kill-buffer buf))

(defmacro flowmetal-test-visiting (spec &rest body)
  "SPEC is (VAR FILE): visit FILE, bind VAR to its buffer and run BODY there.
eglot connects synchronously (`flowmetal-test-connect').  Afterwards, shut
the buffer's server down and kill the buffer."
  (declare (indent 1))
  (let ((var (car spec)))
    `(let* ((eglot-sync-connect t)
            (eglot-connect-timeout 30)
            (eglot-autoshutdown nil)
            (,var (find-file-noselect ,(cadr spec))))
       (unwind-protect
           (with-current-buffer ,var ,@body)
         (flowmetal-test--shut-down ,var)))))

(provide 'eglot-kit)

;;; eglot-kit.el ends here
