;;; eglot-lsp-test.el --- Emacs + eglot against the Flowmetal language server  -*- lexical-binding: t; -*-

;;; Commentary:

;; End-to-end tests: real Emacs, real eglot, real `flowmetal lsp'.
;; Run by tests/editors/test_lsp_editors.py, which sets up
;;
;;   FLOWMETAL_PYTHON        a Python that can run `-m flowmetal lsp'
;;   FLOWMETAL_LSP_TEST_DIR  a scratch directory holding copies of
;;                           broken/naptime.flow (from tests/editors/data/)
;;                           and workspace/{app,lib}.flow (tests/testdata/lsp/)
;;
;; and runs:
;;
;;   emacs --batch -Q -l tests/editors/eglot-load.el -f flowmetal-test-load-eglot \
;;         -l editors/emacs/flowmetal-mode.el \
;;         -l tests/editors/eglot-lsp-test.el -f ert-run-tests-batch-and-exit
;;
;; In batch Emacs `eglot-ensure' never fires (it waits for a command to
;; finish) and Flymake does not start by itself, so the tests call
;; `eglot' directly, start Flymake while waiting, and send a pending
;; change the way eglot's idle timer would.

;;; Code:

(require 'ert)
(require 'flowmetal-mode)

(eval-and-compile
  (load (expand-file-name "eglot-kit.el" (file-name-directory (or load-file-name buffer-file-name)))
        nil t))

(require 'flymake)
(require 'xref)

(defun flowmetal-lsp-test--file (relative)
  "RELATIVE to the scratch directory."
  (expand-file-name relative (flowmetal-test-env "FLOWMETAL_LSP_TEST_DIR")))

(defun flowmetal-lsp-test--diagnostics ()
  "Ask Flymake (fed by eglot) for the current buffer's diagnostics."
  (flymake-start)
  (accept-process-output nil 0.01)
  (flymake-diagnostics))

(defun flowmetal-lsp-test--hover ()
  "The markup of the server's hover at point, as eglot requests it."
  (let ((hover (jsonrpc-request (eglot--current-server-or-lose)
                                :textDocument/hover
                                (eglot--TextDocumentPositionParams))))
    (message "hover at %d:%d: %S" (line-number-at-pos) (current-column) hover)
    (should hover)
    (let ((contents (plist-get hover :contents)))
      ;; Plain text, as eglot asks without markdown-mode (`emacs -Q'):
      ;; nothing for it to show as raw Markdown.
      (unless (fboundp 'gfm-view-mode)
        (should (equal (plist-get contents :kind) "plaintext"))
        (should-not (string-match-p "```\\|\\*\\*" (plist-get contents :value))))
      (plist-get contents :value))))

(defun flowmetal-lsp-test--goto (needle &optional plus)
  "Move point to the first NEEDLE in the buffer, then PLUS characters on."
  (goto-char (point-min))
  (should (search-forward needle nil t))
  (goto-char (+ (match-beginning 0) (or plus 0))))

(defmacro flowmetal-lsp-test--with-server (file &rest body)
  "Visit FILE, connect eglot to `flowmetal lsp', and run BODY in its buffer.
The project root is FILE's directory.  Shut the server down afterwards."
  (declare (indent 1))
  `(let ((file ,file))
     (flowmetal-test-visiting (buf file)
       (should (eq major-mode 'flowmetal-mode))
       (flowmetal-test-connect (file-name-directory file)
                               (list (flowmetal-test-env "FLOWMETAL_PYTHON") "-m" "flowmetal" "lsp"))
       ,@body)))

(ert-deftest flowmetal-lsp-eglot-diagnostics-hover-and-fix ()
  "A broken program: the diagnostic, hover on a defn, then the fix."
  (flowmetal-lsp-test--with-server (flowmetal-lsp-test--file "broken/naptime.flow")
    ;; The unknown name `sleep' is reported on line 11, over `sleep'.
    (let ((diags (flowmetal-test-wait #'flowmetal-lsp-test--diagnostics 30)))
      (dolist (diag diags)
        (message "diagnostic line %d: %s" (line-number-at-pos (flymake-diagnostic-beg diag))
                 (flymake-diagnostic-text diag)))
      (should (= (length diags) 1))
      (let ((diag (car diags)))
        (should (equal (flymake-diagnostic-text diag)
                       "flowmetal [FM301]: unknown name `sleep`; did you mean `sleep!`?"))
        (should (eq (flymake-diagnostic-type diag) 'eglot-error))
        (should (= (line-number-at-pos (flymake-diagnostic-beg diag)) 11))
        (should (equal (buffer-substring-no-properties (flymake-diagnostic-beg diag)
                                                       (flymake-diagnostic-end diag))
                       "sleep"))))
    ;; Hover on a call of a `defn' with a docstring.
    (flowmetal-lsp-test--goto "(nap 1)" 2)
    (let ((value (flowmetal-lsp-test--hover)))
      (should (string-match-p (regexp-quote "(defn nap [n : int?] : nil?)") value))
      (should (string-match-p (regexp-quote "Wait `n` seconds, durably.") value)))
    ;; Fix it in the buffer: `sleep' -> `sleep!'.  eglot sends the edit as
    ;; an incremental change, and the diagnostic goes away.
    (flowmetal-lsp-test--goto "(sleep (" 6)
    (insert "!")
    (eglot--signal-textDocument/didChange)
    (should (flowmetal-test-wait
             (lambda () (null (flowmetal-lsp-test--diagnostics))) 30))
    ;; The server sees the new text: hover on `sleep!' now names the endpoint.
    (flowmetal-lsp-test--goto "(sleep! (make-duration 2" 3)
    (let ((value (flowmetal-lsp-test--hover)))
      (should (string-match-p (regexp-quote "defendpoint sleep!") value)))))

(ert-deftest flowmetal-lsp-eglot-across-files ()
  "A two-package workspace: hover and go-to-definition into the other file."
  (flowmetal-lsp-test--with-server (flowmetal-lsp-test--file "workspace/app.flow")
    (flowmetal-lsp-test--goto "(norm p" 2)
    (let ((value (flowmetal-lsp-test--hover)))
      (should (string-match-p
               (regexp-quote "(defn norm [p : point? :default ... scale : int? :default ...] : int?)")
               value))
      (should (string-match-p (regexp-quote "The taxicab norm of `p`, times `scale`.") value)))
    ;; eglot's xref backend: the definition of `norm' is in lib.flow, line 9.
    (flowmetal-lsp-test--goto "(norm p" 1)
    (let* ((backend (xref-find-backend))
           (defs (xref-backend-definitions
                  backend (xref-backend-identifier-at-point backend))))
      (should (eq backend 'eglot))
      (should (= (length defs) 1))
      (let ((location (xref-item-location (car defs))))
        (message "definition: %s:%s" (xref-location-group location)
                 (xref-location-line location))
        (should (file-equal-p (xref-location-group location)
                              (flowmetal-lsp-test--file "workspace/lib.flow")))
        (should (= (xref-location-line location) 9))))))

(provide 'eglot-lsp-test)

;;; eglot-lsp-test.el ends here
