;;; flowmetal-mode.el --- Major mode for Flowmetal, a durable Lisp  -*- lexical-binding: t; -*-

;; Copyright (c) The Flowmetal authors

;; Author: The Flowmetal authors
;; URL: https://github.com/flowmetal/flowmetal
;; Version: 0.1.0
;; Package-Requires: ((emacs "28.1") (eglot "1.9"))
;; Keywords: languages, lisp
;; SPDX-License-Identifier: MIT

;; This file is not part of GNU Emacs.

;;; Commentary:

;; Editing support for Flowmetal source files (*.flow): syntax table,
;; highlighting, Lisp-style indentation, and registration of the
;; Flowmetal language server with eglot.
;;
;; This mode deliberately holds no language logic.  It does not parse or
;; check programs: diagnostics, hover, completion, go-to-definition and
;; the rest come from the language server, started as `flowmetal lsp'
;; over stdio.  Turn it on with M-x eglot in a Flowmetal buffer, or
;; automatically with:
;;
;;   (add-hook 'flowmetal-mode-hook #'eglot-ensure)
;;
;; To run a different server command, put your own entry for
;; `flowmetal-mode' at the front of `eglot-server-programs'.
;;
;; Running and tracing, over the same language server (the protocol is
;; docs/lsp-protocol.md in the Flowmetal sources):
;;
;;   M-x flowmetal-run     (C-c C-r)  run the function point is in (outside
;;                                    any, choose one), asking for its
;;                                    arguments
;;   M-x flowmetal-runs    (C-c C-l)  the runs of the store, live
;;   M-x flowmetal-trace              one run's events, live
;;
;; In a trace, n and p step to the next or previous event and show the
;; program's state there in another window (the trace stays in view);
;; RET also shows the event's code, s shows the state at the event on
;; the line, c cancels the run and r replays it.
;;
;; Installing, on Emacs 28 with eglot (Debian 12: elpa-eglot):
;;
;;   M-x package-install-file RET /path/to/flowmetal/editors/emacs/flowmetal-mode.el
;;
;; or put this file's directory on `load-path' and (require 'flowmetal-mode).
;;
;; The store and the `flowmetal serve' that drives the runs are the
;; options `flowmetal-store' and `flowmetal-serve' (also as directory
;; local variables), given to the server when it starts.
;;
;; A store can come with a cloned repository, holding runs someone else
;; left there: the server drives only the runs started from Emacs unless
;; the store is in `flowmetal-trusted-stores' (M-x flowmetal-trust-store
;; adds the current one).  The others are listed, marked as not run here.
;;
;; A run with tasks (flowmetal.task) has a task column in its trace
;; (T0 for the run's own code, T1, T2 ... for the tasks it spawned); a
;; child run is listed under the run that started it, indented.  Both
;; come from the server's messages: each event's `task', each run's
;; `parent'.

;;; Code:

(require 'lisp-mode)
(require 'cl-lib)
(require 'subr-x)
(require 'json)
(require 'tabulated-list)
(require 'eglot)

(defgroup flowmetal nil
  "Editing Flowmetal source files."
  :group 'languages
  :prefix "flowmetal-")

;;;; Faces

(defface flowmetal-keyword-face
  '((t :inherit font-lock-constant-face))
  "Face for Flowmetal keywords such as `:default'."
  :group 'flowmetal)

(defface flowmetal-type-marker-face
  '((t :inherit font-lock-keyword-face))
  "Face for the lone `:' that introduces a type annotation."
  :group 'flowmetal)

(defface flowmetal-enum-member-face
  '((t :inherit font-lock-constant-face))
  "Face for enum members such as `+seconds+'."
  :group 'flowmetal)

(defface flowmetal-endpoint-face
  '((t :inherit font-lock-function-name-face))
  "Face for names ending in `!', the durable endpoint calls."
  :group 'flowmetal)

(defface flowmetal-number-face
  '((t :inherit font-lock-constant-face))
  "Face for Flowmetal number literals."
  :group 'flowmetal)

(defface flowmetal-escape-face
  '((t :inherit font-lock-regexp-grouping-backslash))
  "Face for escape sequences in \"...\" strings."
  :group 'flowmetal)

;;;; Syntax table

(defvar flowmetal-mode-syntax-table
  (let ((table (make-syntax-table)))
    ;; Symbol constituents besides letters and digits.
    (dolist (c '(?- ?_ ?+ ?* ?/ ?< ?> ?= ?! ?? ?. ?:))
      (modify-syntax-entry c "_" table))
    ;; The comma is whitespace, as are the usual blanks.
    (dolist (c '(?\s ?\t ?\f ?\r ?,))
      (modify-syntax-entry c " " table))
    ;; Comments: `;' to the end of the line.
    (modify-syntax-entry ?\; "<" table)
    (modify-syntax-entry ?\n ">" table)
    ;; Strings and escapes.
    (modify-syntax-entry ?\" "\"" table)
    (modify-syntax-entry ?\\ "\\" table)
    ;; Lists, vectors and maps.
    (modify-syntax-entry ?\( "()" table)
    (modify-syntax-entry ?\) ")(" table)
    (modify-syntax-entry ?\[ "(]" table)
    (modify-syntax-entry ?\] ")[" table)
    (modify-syntax-entry ?\{ "(}" table)
    (modify-syntax-entry ?\} "){" table)
    ;; Characters with no meaning in Flowmetal.
    (dolist (c '(?' ?` ?# ?@ ?~ ?^ ?| ?% ?& ?$))
      (modify-syntax-entry c "." table))
    table)
  "Syntax table for `flowmetal-mode'.")

;;;; Triple-quoted strings

(defconst flowmetal--triple-quote "\"\"\""
  "The delimiter of a verbatim, possibly multi-line, string.")

(defun flowmetal--close-triple-quote (end)
  "Mark the closing delimiter of the triple-quoted string around point.
Point is inside the string; search no further than END.  The last
quote of the closing delimiter gets string-fence syntax, so that
the quotes and backslashes inside stay plain text."
  (if (search-forward flowmetal--triple-quote end t)
      (put-text-property (1- (point)) (point)
                         'syntax-table (string-to-syntax "|"))
    (goto-char end)))

(defun flowmetal-syntax-propertize (start end)
  "Give triple-quoted strings between START and END string-fence syntax."
  (goto-char start)
  (let ((ppss (syntax-ppss)))
    ;; START may lie inside a triple-quoted string opened earlier.
    (when (eq t (nth 3 ppss))
      (flowmetal--close-triple-quote end)))
  (while (search-forward flowmetal--triple-quote end t)
    (let* ((open (match-beginning 0))
           (ppss (save-excursion (syntax-ppss open))))
      (if (or (nth 3 ppss) (nth 4 ppss) (nth 5 ppss))
          ;; The first quote ends a "..." string, or sits in a comment:
          ;; look again one character further on.
          (goto-char (1+ open))
        (put-text-property open (1+ open)
                           'syntax-table (string-to-syntax "|"))
        (flowmetal--close-triple-quote end)))))

;;;; Highlighting

(defconst flowmetal-definition-forms
  '("defpackage" "require" "defenum" "defrecord" "defn" "defendpoint" "def")
  "Forms that define names.")

(defconst flowmetal-special-forms
  '("fn" "let" "if" "if-not" "when" "cond" "do" "and" "or" "not" "match")
  "Expression forms with their own evaluation rules.")

(defconst flowmetal--symbol "\\(?:\\sw\\|\\s_\\)+"
  "Regexp matching the characters of a symbol.")

(defun flowmetal--match-escape (limit)
  "Find the next escape sequence inside a \"...\" string before LIMIT."
  (let (found)
    (while (and (not found)
                (re-search-forward "\\\\\\(?:u[0-9A-Fa-f]\\{4\\}\\|[\"\\\\nt]\\)"
                                   limit t))
      ;; Only in ordinary strings: triple-quoted text is verbatim.
      (when (eq (nth 3 (save-excursion (syntax-ppss (match-beginning 0)))) ?\")
        (setq found t)))
    found))

(defconst flowmetal-font-lock-keywords
  (let ((sym flowmetal--symbol)
        (end "\\_>"))
    `(;; Definitions and the name they define.
      (,(concat "(\\(defn\\|defendpoint\\)" end "[ \t\n,]+\\(" sym "\\)")
       (1 font-lock-keyword-face)
       (2 font-lock-function-name-face))
      (,(concat "(\\(defenum\\|defrecord\\)" end "[ \t\n,]+\\(" sym "\\)")
       (1 font-lock-keyword-face)
       (2 font-lock-type-face))
      (,(concat "(\\(def\\)" end "[ \t\n,]+\\(" sym "\\)")
       (1 font-lock-keyword-face)
       (2 font-lock-variable-name-face))
      (,(concat "(\\(defpackage\\)" end "[ \t\n,]+\\(" sym "\\)")
       (1 font-lock-keyword-face)
       (2 font-lock-constant-face))
      ;; Special forms, in head position.
      (,(concat "(" (regexp-opt (append flowmetal-definition-forms
                                        flowmetal-special-forms)
                                'symbols))
       1 font-lock-keyword-face)
      ;; Escapes in "..." strings.
      (flowmetal--match-escape 0 'flowmetal-escape-face prepend)
      ;; Keywords, and the lone type marker.
      (,(concat "\\_<:" sym) 0 'flowmetal-keyword-face)
      ("\\_<:\\_>" 0 'flowmetal-type-marker-face)
      ;; Literals.
      (,(regexp-opt '("nil" "true" "false") 'symbols) 0 font-lock-constant-face)
      ("\\_<-?[0-9]+\\(?:\\.[0-9]+\\(?:[eE][-+]?[0-9]+\\)?\\)?\\_>"
       0 'flowmetal-number-face)
      ;; Enum members: +seconds+.
      (,(concat "\\_<\\+" sym "\\+\\_>") 0 'flowmetal-enum-member-face)
      ;; Durable endpoint calls: sleep!, alias/post!.
      (,(concat "\\_<" sym "!\\_>") 0 'flowmetal-endpoint-face)
      ;; Types (and their predicates): int?, duration?.
      (,(concat "\\_<" sym "\\?\\_>") 0 font-lock-type-face)))
  "Highlighting for `flowmetal-mode'.")

;;;; Indentation

(defcustom flowmetal-indent-specs
  '(("defpackage" . 1)
    ("require" . 0)
    ("defenum" . 1)
    ("defrecord" . defun)
    ("defn" . defun)
    ("defendpoint" . defun)
    ("def" . 1)
    ("fn" . 1)
    ("let" . 1)
    ("if" . 1)
    ("if-not" . 1)
    ("when" . 1)
    ("cond" . 0)
    ("do" . 0)
    ("match" . 1))
  "How to indent the arguments of a form, by the name at its head.
Each value is a number N (the first N arguments are special, the
rest are a body indented by `lisp-body-indent'), or `defun', as in
the `indent' spec of `declare'.  Other names that
start with \"def\" indent like `defun'; the remaining forms line
their arguments up like a function call."
  :type '(alist :key-type string
                :value-type (choice (const :tag "Like defun" defun)
                                    (integer :tag "Special arguments")))
  :group 'flowmetal)

(defvar calculate-lisp-indent-last-sexp)

(defun flowmetal-indent-function (indent-point state)
  "Indentation for the line at INDENT-POINT, given the parse STATE.
Used as the variable `lisp-indent-function'.  Vectors and maps
line their elements up under the first one; lists look up the name
at their head in `flowmetal-indent-specs'."
  (let ((normal-indent (current-column))
        (open (elt state 1)))
    (goto-char (1+ open))
    (parse-partial-sexp (point) calculate-lisp-indent-last-sexp 0 t)
    (cond
     ;; [a b ...] and {k v ...}: data, not calls.
     ((memq (char-after open) '(?\[ ?\{))
      (current-column))
     ;; The head is not a symbol: line up with it.
     ((and (elt state 2) (not (looking-at "\\sw\\|\\s_")))
      (unless (> (save-excursion (forward-line 1) (point))
                 calculate-lisp-indent-last-sexp)
        (goto-char calculate-lisp-indent-last-sexp)
        (beginning-of-line)
        (parse-partial-sexp (point) calculate-lisp-indent-last-sexp 0 t))
      (current-column))
     (t
      (let* ((head (buffer-substring-no-properties
                    (point) (progn (forward-sexp 1) (point))))
             (method (cdr (assoc head flowmetal-indent-specs))))
        (cond ((or (eq method 'defun)
                   (and (null method)
                        (> (length head) 3)
                        (string-prefix-p "def" head)))
               (lisp-indent-defform state indent-point))
              ((integerp method)
               (lisp-indent-specform method state indent-point
                                     normal-indent))))))))

;;;; The mode

(defvar flowmetal-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "C-c C-r") #'flowmetal-run)
    (define-key map (kbd "C-c C-l") #'flowmetal-runs)
    map)
  "Keymap for `flowmetal-mode'.")

;;;###autoload
(define-derived-mode flowmetal-mode prog-mode "Flowmetal"
  "Major mode for editing Flowmetal, a durable Lisp.

Checking, completion, hover and navigation come from the Flowmetal
language server (`flowmetal lsp'); start it with \\[eglot].

\\{flowmetal-mode-map}"
  :syntax-table flowmetal-mode-syntax-table
  :group 'flowmetal
  (setq-local comment-start ";")
  (setq-local comment-start-skip ";+ *")
  (setq-local comment-add 1)
  (setq-local comment-end "")
  (setq-local comment-use-syntax t)
  (setq-local parse-sexp-ignore-comments t)
  (setq-local syntax-propertize-function #'flowmetal-syntax-propertize)
  (setq-local font-lock-defaults '(flowmetal-font-lock-keywords))
  (setq-local indent-line-function #'lisp-indent-line)
  (setq-local lisp-indent-function #'flowmetal-indent-function)
  (setq-local indent-tabs-mode nil))

;;;###autoload
(add-to-list 'auto-mode-alist '("\\.flow\\'" . flowmetal-mode))

;;;; The language server

;; eglot's public interface is used wherever it has what is needed.  What
;; eglot 1.9 (Debian 12's, for Emacs 28) offers only privately, and is
;; used here all the same, each behind `fboundp' where a later eglot has
;; a public name for it:
;;
;;   `eglot--signal-textDocument/didChange'  sends the buffer's pending
;;       edits before `flowmetal-run' asks for the code lenses: eglot
;;       sends them only before its own requests.
;;   `eglot--uri-to-path', `eglot--path-to-uri'  file names and URIs as
;;       eglot makes them; `eglot-uri-to-path' and `eglot-path-to-uri'
;;       (eglot 1.16 and later) are used when they exist.
;;   `eglot--workspace-configuration-plist'  whether the user configured
;;       a `flowmetal' section (then the settings are left to it); it
;;       resolves the per-directory and function forms of
;;       `eglot-workspace-configuration', as eglot sends it.
;;   `eglot--project'  the project of a server (its root is where a
;;       relative store path starts); no public accessor in eglot 1.9.

(declare-function eglot-uri-to-path "eglot" (uri))
(declare-function eglot-path-to-uri "eglot" (path &rest args))
(declare-function project-root "project" (project))
(declare-function jsonrpc-async-request "jsonrpc" (connection method params &rest args))
(declare-function jsonrpc-request "jsonrpc" (connection method params &rest args))
(declare-function jsonrpc-notify "jsonrpc" (connection method params))
(declare-function jsonrpc-running-p "jsonrpc" (connection))
(declare-function pulse-momentary-highlight-region "pulse" (start end &optional face))

(defcustom flowmetal-store nil
  "The store of runs the language server works on: an SQLite path.
A relative path is relative to the project's root.  nil leaves the
choice to the server: $FLOWMETAL_STORE, else .flowmetal/store.db in
the project, as the command line does when run from there."
  :type '(choice (const :tag "The server's default" nil)
                 (string :tag "SQLite path"))
  :safe (lambda (value) (or (null value) (stringp value)))
  :group 'flowmetal)

(defcustom flowmetal-serve nil
  "The URL of a running `flowmetal serve', here or elsewhere, or nil.
With a URL, runs started from Emacs are handed to that serve, which
drives them; without one, the language server drives them itself.
As a directory local variable it is taken without asking only for a
serve on this machine (a project's files should not send your runs
elsewhere)."
  :type '(choice (const :tag "None: the language server runs them" nil)
                 (string :tag "URL"))
  :safe (lambda (value)
          (or (null value)
              (and (stringp value)
                   (string-match-p "\\`https?://\\(127\\.0\\.0\\.1\\|localhost\\|\\[::1\\]\\)\\(:[0-9]+\\)?/?\\'"
                                   value))))
  :group 'flowmetal)

(defcustom flowmetal-trusted-stores nil
  "The stores whose runs the language server may drive: files or directories.
The server always drives the runs started from Emacs.  The other runs of
a store (a cloned repository can come with a store holding runs, whose
programs send HTTP requests) are driven only when the store is one of
these files, or inside one of these directories.  Trust is yours to
give: this is never taken from directory local variables."
  :type '(repeat (file :tag "Store file or directory"))
  :group 'flowmetal)

(put 'flowmetal-trusted-stores 'risky-local-variable t)

(defcustom flowmetal-token nil
  "The `FLOWMETAL_TOKEN' of the serve named by `flowmetal-serve', or nil."
  :type '(choice (const :tag "None" nil) (string :tag "Token"))
  :group 'flowmetal)

(defcustom flowmetal-runs-limit 1000
  "How many runs \\[flowmetal-runs] lists at most: those started last.
nil lists every run.  A store shared by a fleet may hold many thousands;
the mode line of the runs buffer says when the list was cut."
  :type '(choice (const :tag "Every run" nil) natnum)
  :group 'flowmetal)

(defcustom flowmetal-request-timeout 60
  "Seconds to wait for the language server's answer to a run request.
Replaying a run, or finding the state at one of its events, runs the
program again from its log, which can take a while."
  :type 'number
  :group 'flowmetal)

(defvar flowmetal--server-settings (make-hash-table :test #'eq :weakness 'key)
  "The settings each language server was started with.")

(defun flowmetal-settings ()
  "The run settings for the current buffer, as the server takes them."
  (list :store flowmetal-store :serve flowmetal-serve :token flowmetal-token))

(defun flowmetal--store-file (settings root)
  "The store file of the run SETTINGS (see `flowmetal-settings'), or nil.
nil with a serve (the serve drives its runs).  A relative path is
relative to ROOT, the project's root, as the server takes it."
  (unless (plist-get settings :serve)
    (expand-file-name (or (plist-get settings :store) (getenv "FLOWMETAL_STORE") ".flowmetal/store.db")
                      root)))

(defun flowmetal-store-trusted-p (store)
  "Non-nil when the file STORE is, or is inside, one of `flowmetal-trusted-stores'."
  (and store
       (let ((file (file-truename (expand-file-name store))))
         (cl-some (lambda (trusted)
                    (let ((place (file-truename (expand-file-name trusted))))
                      (or (string= (directory-file-name place) file)
                          (file-in-directory-p file place))))
                  flowmetal-trusted-stores))))

(defun flowmetal-initialization-options (server)
  "The `initializationOptions' for SERVER: the run settings, and trust.
Called by eglot in the buffer that starts the server, with
`default-directory' at the project's root, so directory local values
of `flowmetal-store' and `flowmetal-serve' apply."
  (let ((settings (flowmetal-settings)))
    (puthash server settings flowmetal--server-settings)
    (append settings (list :trusted (if (flowmetal-store-trusted-p
                                         (flowmetal--store-file settings default-directory))
                                        t
                                      :json-false)))))

(defun flowmetal--send-trust (server trusted)
  "Tell SERVER whether its store is TRUSTED (the `flowmetal.trust' command)."
  (jsonrpc-async-request server :workspace/executeCommand
                         (list :command "flowmetal.trust"
                               :arguments (vector (list :trusted (if trusted t :json-false))))
                         :success-fn #'ignore))

(defun flowmetal--user-configured-p (server)
  "Non-nil when the workspace configuration of SERVER has a `flowmetal' section."
  (and (fboundp 'eglot--workspace-configuration-plist)
       (plist-member (ignore-errors (eglot--workspace-configuration-plist server))
                     :flowmetal)))

(defun flowmetal--send-settings (server &optional settings)
  "Send SERVER its run SETTINGS (default: those it started with).
A `workspace/didChangeConfiguration' with no `flowmetal' section puts
the server back on its defaults, and eglot sends one as it connects:
this follows it with the settings the server was started with."
  (let ((settings (or settings (gethash server flowmetal--server-settings))))
    (when (and settings (not (flowmetal--user-configured-p server)))
      (jsonrpc-notify server :workspace/didChangeConfiguration
                      (list :settings (list :flowmetal settings))))))

(defun flowmetal-apply-settings ()
  "Send the current `flowmetal-store', `flowmetal-serve' and `flowmetal-token'.
The language server switches to that store (and serve) at once, and
is told whether that store is in `flowmetal-trusted-stores'."
  (interactive)
  (let* ((server (flowmetal--server))
         (settings (flowmetal-settings))
         (trusted (flowmetal-store-trusted-p (flowmetal--store-file settings (flowmetal--root server)))))
    (puthash server settings flowmetal--server-settings)
    (flowmetal--send-settings server settings)
    ;; After the settings: moving to another store drops the trust given before.
    (flowmetal--send-trust server trusted)
    (message "Flowmetal: store %s%s, serve %s"
             (or flowmetal-store "(default)") (if trusted " (trusted)" "")
             (or flowmetal-serve "none"))))

(defun flowmetal--root (server)
  "The project root of SERVER, where relative store paths start."
  (or (ignore-errors (project-root (eglot--project server))) default-directory))

(defun flowmetal-trust-store ()
  "Trust the store of the current buffer's language server, after asking.
Adds it to `flowmetal-trusted-stores' for this session (customize that
option to keep it), and has the server drive every run of the store,
not only those started from Emacs."
  (interactive)
  (let* ((server (flowmetal--server))
         (store (or (flowmetal--store-file (gethash server flowmetal--server-settings)
                                           (flowmetal--root server))
                    (user-error "Flowmetal: a serve drives the runs: there is no store to trust here"))))
    (when (yes-or-no-p (format "Let Flowmetal run every run of %s, whoever left it there? "
                               (abbreviate-file-name store)))
      (add-to-list 'flowmetal-trusted-stores store)
      (flowmetal--send-trust server t)
      (message "Flowmetal: %s is trusted for this session (customize `flowmetal-trusted-stores' to keep it)"
               (abbreviate-file-name store)))))

;; Loading the mode (visiting a .flow file does) registers the server.
(add-to-list 'eglot-server-programs
             '(flowmetal-mode . ("flowmetal" "lsp" :initializationOptions
                                 flowmetal-initialization-options)))
(add-hook 'eglot-connect-hook #'flowmetal--send-settings t)

;;;; Talking to the server

(defvar-local flowmetal--server nil
  "The language server of a runs, trace or state buffer.")

(defun flowmetal--running-p (server)
  "Non-nil when SERVER is a live connection."
  (and server (fboundp 'jsonrpc-running-p) (jsonrpc-running-p server)))

(defun flowmetal--flowmetal-server-p (server)
  "Non-nil when SERVER is a live language server for `flowmetal-mode'.
That is, one started with `flowmetal-initialization-options', which
keeps each such server in `flowmetal--server-settings'."
  (and (flowmetal--running-p server)
       (gethash server flowmetal--server-settings)
       t))

(defun flowmetal--server ()
  "The Flowmetal language server for the current buffer, or an error."
  (or (and (flowmetal--running-p flowmetal--server) flowmetal--server)
      (and (fboundp 'eglot-current-server)
           (let ((server (eglot-current-server)))
             ;; (The server of a Flowmetal buffer is one, however it was started.)
             (and (or (flowmetal--flowmetal-server-p server)
                      (and (derived-mode-p 'flowmetal-mode) (flowmetal--running-p server)))
                  server)))
      (catch 'found
        (maphash (lambda (server _settings)
                   (when (flowmetal--flowmetal-server-p server)
                     (throw 'found server)))
                 flowmetal--server-settings)
        nil)
      (user-error "No Flowmetal language server: visit a .flow file and start one with M-x eglot")))

(defun flowmetal--request (server method params)
  "Ask SERVER for METHOD with PARAMS; its refusal becomes a `user-error'."
  (condition-case err
      (jsonrpc-request server method params :timeout flowmetal-request-timeout)
    (jsonrpc-error
     (user-error "Flowmetal: %s"
                 (or (alist-get 'jsonrpc-error-message (cdr err))
                     (error-message-string err))))))

(defun flowmetal--command (server command argument)
  "Run the server COMMAND on SERVER with ARGUMENT, a plist; return its answer."
  (flowmetal--request server :workspace/executeCommand
                      (list :command command :arguments (vector argument))))

(defun flowmetal--uri-to-path (uri)
  "The file name of the `file:' URI."
  (if (fboundp 'eglot-uri-to-path) (eglot-uri-to-path uri) (eglot--uri-to-path uri)))

(defun flowmetal--buffer-uri ()
  "The URI of the current buffer's file, as eglot sends it."
  (let ((file (or buffer-file-name (user-error "This buffer visits no file"))))
    (if (fboundp 'eglot-path-to-uri) (eglot-path-to-uri file) (eglot--path-to-uri file))))

(defun flowmetal--point (position)
  "The point in the current buffer of the LSP POSITION.
Its character counts as eglot counts columns (UTF-16 code units, by
`eglot-move-to-column-function')."
  (save-excursion
    (save-restriction
      (widen)
      (goto-char (point-min))
      (forward-line (plist-get position :line))
      (unless (eobp)
        (let ((column (plist-get position :character)))
          (funcall eglot-move-to-column-function (if (wholenump column) column 0))))
      (point))))

(defun flowmetal--flush-changes ()
  "Send the server the buffer's edits it has not seen yet."
  (when (and (fboundp 'eglot-managed-p) (eglot-managed-p)
             (fboundp 'eglot--signal-textDocument/didChange))
    (eglot--signal-textDocument/didChange)))

(defun flowmetal--list (value)
  "VALUE, a JSON array (a vector) or nil, as a list."
  (append value nil))

(defun flowmetal--true-p (value)
  "Non-nil when the JSON VALUE is true."
  (eq value t))

(defun flowmetal--newer-run (old new)
  "Whichever of the Run plists OLD and NEW is the later news of a run.
NEW, unless OLD was updated later."
  (if (and old new
           (string< (or (plist-get new :updated) "") (or (plist-get old :updated) "")))
      old
    (or new old)))

(defun flowmetal--first-line (text)
  "The first line of TEXT, with an ellipsis when there is more."
  (if (and text (string-match "\n" text))
      (concat (substring text 0 (match-beginning 0)) " …")
    text))

;;;; Running

(defvar flowmetal-read-argument-function #'flowmetal-read-argument
  "The function that reads one argument of a run.
It is called with the parameter, a plist (:name NAME :type TYPE
:optional OPTIONAL) from the language server, and the entry
function's name, and returns the argument: the text of a Flowmetal
literal, such as \"42\" or \"\\\"ann\\\"\".")

(defun flowmetal-read-argument (param _entry)
  "Read the Flowmetal literal for PARAM in the minibuffer."
  (read-string (format "%s (%s): " (plist-get param :name) (plist-get param :type))))

(defun flowmetal--run-lenses (server)
  "The entry functions of the current buffer, from SERVER's code lenses.
Each is a plist (:range RANGE :uri URI :entry ENTRY :params PARAMS),
with :args ARGS when the function needs no arguments."
  (flowmetal--flush-changes)
  (let ((lenses (flowmetal--request server :textDocument/codeLens
                                    (list :textDocument
                                          (list :uri (flowmetal--buffer-uri))))))
    (cl-loop for lens across lenses
             for command = (plist-get lens :command)
             when (equal (plist-get command :command) "flowmetal.run")
             collect (append (list :range (plist-get lens :range))
                             (aref (plist-get command :arguments) 0)))))

(defun flowmetal--lens-around-point (lenses)
  "The entry of LENSES whose function holds point, or nil.
The server gives the range of each function's whole definition
\(`definitionRange'); on the function's name counts too."
  (cl-find-if (lambda (lens)
                (cl-some (lambda (range)
                           (and range
                                (<= (flowmetal--point (plist-get range :start))
                                    (point)
                                    (flowmetal--point (plist-get range :end)))))
                         (list (plist-get lens :definitionRange) (plist-get lens :range))))
              lenses))

(defun flowmetal--lens-at-point (lenses)
  "The entry of LENSES whose function holds point; else ask which one.
The question offers the file's entries, with completion; the first is
the default."
  (or (flowmetal--lens-around-point lenses)
      (if (null lenses)
          (user-error "No function to run in this file")
        (let* ((entries (mapcar (lambda (lens) (plist-get lens :entry)) lenses))
               (entry (completing-read (format-prompt "Run function" (car entries))
                                       entries nil t nil nil (car entries))))
          (cl-find entry lenses :key (lambda (lens) (plist-get lens :entry))
                   :test #'equal)))))

(defun flowmetal--read-arguments (lens all)
  "Read the arguments of the entry of LENS.
The required ones; with ALL, then the optional ones up to the first
left empty."
  (let ((entry (plist-get lens :entry))
        args)
    (catch 'done
      (dolist (param (flowmetal--list (plist-get lens :params)))
        (let ((optional (flowmetal--true-p (plist-get param :optional))))
          (when (and optional (not all))
            (throw 'done nil))
          (let ((value (funcall flowmetal-read-argument-function param entry)))
            (when (and optional (string-empty-p (string-trim value)))
              (throw 'done nil))
            (push value args)))))
    (nreverse args)))

;;;###autoload
(defun flowmetal-run (&optional all)
  "Run the function point is in, in a run of the store.
With point outside every function, ask which of the file's functions
to run.  Ask for its arguments, Flowmetal literals; with a prefix
argument ALL, for its optional ones too.  The program is the file and
the files it requires as they are in Emacs, unsaved changes included.
Show the run's trace as it goes, and return the run's id."
  (interactive "P")
  (unless (derived-mode-p 'flowmetal-mode)
    (user-error "Not a Flowmetal buffer"))
  (let* ((server (flowmetal--server))
         (lens (flowmetal--lens-at-point (flowmetal--run-lenses server)))
         (entry (plist-get lens :entry))
         (args (if (and (plist-member lens :args) (not all))
                   (flowmetal--list (plist-get lens :args))
                 (flowmetal--read-arguments lens all)))
         (answer (flowmetal--command server "flowmetal.run"
                                     (list :uri (plist-get lens :uri)
                                           :entry entry
                                           :args (vconcat args))))
         (run-id (plist-get answer :runId)))
    (display-buffer (flowmetal--trace-open server run-id))
    (message "Flowmetal: run %s of %s started" run-id entry)
    run-id))

;;;; Runs

(defvar-local flowmetal--runs nil
  "The runs shown in a runs buffer: Run plists, newest first.")

(defvar-local flowmetal--runs-entry nil
  "The entry function a runs buffer shows the runs of, or nil for all.")

(defvar flowmetal-runs-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "RET") #'flowmetal-runs-trace)
    (define-key map "c" #'flowmetal-runs-cancel)
    (define-key map "r" #'flowmetal-runs-replay)
    map)
  "Keymap for `flowmetal-runs-mode'.")

(define-derived-mode flowmetal-runs-mode tabulated-list-mode "Flowmetal-Runs"
  "The runs of a Flowmetal store, kept up to date by the language server.

\\{flowmetal-runs-mode-map}"
  :group 'flowmetal
  (setq tabulated-list-format [("Id" 16 t)
                               ("Entry" 24 t)
                               ("Status" 10 t)
                               ("Started" 24 t)
                               ("Result / error" 0 nil)])
  (setq tabulated-list-padding 1)
  (add-hook 'tabulated-list-revert-hook #'flowmetal--runs-fetch nil t)
  (tabulated-list-init-header))

(defun flowmetal--run-unserved (run)
  "A note naming the endpoints RUN waits on that no live process serves, or nil."
  (let ((unserved (flowmetal--list (plist-get run :unserved))))
    (and unserved
         (format "waiting on %s: no live process serves %s"
                 (string-join unserved ", ") (if (cdr unserved) "them" "it")))))

(defun flowmetal--run-outcome (run)
  "What RUN came to: its result, its error's first line, or nothing yet.
For a run the server does not drive, why it waits; for one waiting on an
endpoint no live process serves, which."
  (or (plist-get run :result)
      (flowmetal--first-line (plist-get run :error))
      (and (plist-get run :blocked)
           (propertize (concat "not run here: " (plist-get run :blocked)) 'face 'shadow))
      (let ((note (flowmetal--run-unserved run)))
        (and note (propertize note 'face 'warning)))
      ""))

(defun flowmetal--run-parent (run runs)
  "The id of the run RUN is listed under: its parent, when RUNS has it.
RUNS is a table of the listed runs by id.  A cycle of parents (a store
edited by hand) nests none of them."
  (let ((parent (plist-get run :parent)))
    (when (and (stringp parent) (gethash parent runs))
      ;; Up from the parent: coming back to a run met on the way is a cycle.
      (let ((seen (list (plist-get run :id)))
            (at parent)
            cycle)
        (while (and (not cycle) (stringp at) (gethash at runs))
          (if (member at seen)
              (setq cycle t)
            (push at seen)
            (setq at (plist-get (gethash at runs) :parent))))
        (unless cycle parent)))))

(defun flowmetal--runs-nested (runs)
  "RUNS (newest first) as (RUN . DEPTH), each child run after its parent.
Siblings stay newest first; a run whose parent is not listed is at the top."
  (let ((by-id (make-hash-table :test #'equal))
        (children (make-hash-table :test #'equal))
        roots stack out)
    (dolist (run runs)
      (puthash (plist-get run :id) run by-id))
    (dolist (run runs)
      (let ((parent (flowmetal--run-parent run by-id)))
        (if parent
            (push run (gethash parent children))
          (push run roots))))
    ;; Depth first, without recursion: a long chain of child runs is no limit.
    (setq stack (mapcar (lambda (run) (cons run 0)) (nreverse roots)))
    (while stack
      (let ((top (pop stack)))
        (push top out)
        (setq stack (append (mapcar (lambda (child) (cons child (1+ (cdr top))))
                                    (reverse (gethash (plist-get (car top) :id) children)))
                            stack))))
    (nreverse out)))

(defun flowmetal--runs-entries ()
  "The rows of the runs buffer, from `flowmetal--runs'.
A child run's row follows its parent's, its entry indented."
  (mapcar (lambda (item)
            (let ((run (car item))
                  (depth (cdr item)))
              (list (plist-get run :id)
                    (vector (plist-get run :id)
                            (if (zerop depth)
                                (plist-get run :entry)
                              (concat (make-string (* 2 (1- depth)) ?\s) "└ "
                                      (plist-get run :entry)))
                            (propertize (plist-get run :status)
                                        'face (flowmetal--status-face
                                               (plist-get run :status)))
                            (or (plist-get run :started) "")
                            (flowmetal--run-outcome run)))))
          (flowmetal--runs-nested flowmetal--runs)))

(defun flowmetal--status-face (status)
  "The face that shows a run's STATUS."
  (pcase status
    ("completed" 'success)
    ("failed" 'error)
    ("cancelled" 'shadow)
    (_ 'warning)))

(defun flowmetal--runs-fetch ()
  "Read the runs again from the server."
  (setq flowmetal--runs nil)
  (let* ((limit (and (natnump flowmetal-runs-limit) (> flowmetal-runs-limit 0)
                     flowmetal-runs-limit))
         (params (append (and flowmetal--runs-entry (list :entry flowmetal--runs-entry))
                         (and limit (list :last limit))))
         (runs (flowmetal--request (flowmetal--server) :flowmetal/runs
                                   (or params (make-hash-table))))
         (notified flowmetal--runs))
    (setq mode-line-process
          (and limit (>= (length (flowmetal--list runs)) limit)
               (format " [the %d started last]" limit)))
    ;; Keep what was notified while the answer was on its way, when newer.
    (setq flowmetal--runs
          (mapcar (lambda (run)
                    (flowmetal--newer-run
                     (cl-find (plist-get run :id) notified
                              :key (lambda (r) (plist-get r :id)) :test #'equal)
                     run))
                  (reverse (flowmetal--list runs))))
    (dolist (run (reverse notified))
      (unless (cl-find (plist-get run :id) flowmetal--runs
                       :key (lambda (r) (plist-get r :id)) :test #'equal)
        (push run flowmetal--runs))))
  (setq tabulated-list-entries #'flowmetal--runs-entries))

(defun flowmetal--runs-update (server run)
  "Show RUN, new or changed, in the runs buffer of SERVER."
  (let ((buffer (get-buffer "*flowmetal runs*")))
    (when (and buffer (eq (buffer-local-value 'flowmetal--server buffer) server))
      (with-current-buffer buffer
        (when (or (null flowmetal--runs-entry)
                  (equal flowmetal--runs-entry (plist-get run :entry)))
          (let* ((id (plist-get run :id))
                 (old (cl-position id flowmetal--runs
                                   :key (lambda (r) (plist-get r :id)) :test #'equal)))
            (if old
                (setf (nth old flowmetal--runs)
                      (flowmetal--newer-run (nth old flowmetal--runs) run))
              (push run flowmetal--runs))
            (tabulated-list-print t)))))))

;;;###autoload
(defun flowmetal-runs (&optional entry)
  "List the runs of the store in the buffer *flowmetal runs*.
With a prefix argument, only those of an ENTRY function (package/name).
The list follows the store live: runs started here, from the command
line or by a serve on the same store.
\\<flowmetal-runs-mode-map>
\\[flowmetal-runs-trace] shows a run's trace, \\[flowmetal-runs-cancel] cancels it,
\\[flowmetal-runs-replay] replays it and \\[revert-buffer] reads the runs again."
  (interactive
   (list (and current-prefix-arg
              (let ((entry (read-string "Runs of (package/name, empty for all): ")))
                (and (not (string-empty-p entry)) entry)))))
  (let ((server (flowmetal--server))
        (buffer (get-buffer-create "*flowmetal runs*")))
    (with-current-buffer buffer
      (unless (derived-mode-p 'flowmetal-runs-mode)
        (flowmetal-runs-mode))
      (setq flowmetal--server server
            flowmetal--runs-entry entry)
      (flowmetal--runs-fetch)
      (tabulated-list-print t))
    (pop-to-buffer buffer)
    buffer))

(defun flowmetal--run-id-at-point ()
  "The id of the run on this line, or an error."
  (or (tabulated-list-get-id) (user-error "No run on this line")))

(defun flowmetal-runs-trace ()
  "Show the trace of the run on this line."
  (interactive)
  (pop-to-buffer (flowmetal--trace-open (flowmetal--server) (flowmetal--run-id-at-point))))

(defun flowmetal--cancel (server run-id)
  "Cancel the run RUN-ID on SERVER, and say what became of it."
  (let ((answer (flowmetal--command server "flowmetal.cancel" (list :runId run-id))))
    (message "Flowmetal: run %s %s" run-id (plist-get answer :status))
    answer))

(defun flowmetal-runs-cancel ()
  "Cancel the run on this line."
  (interactive)
  (flowmetal--cancel (flowmetal--server) (flowmetal--run-id-at-point)))

(defun flowmetal--replay (server run-id)
  "Replay the run RUN-ID on SERVER from its log; say whether it reproduces."
  (let ((answer (flowmetal--command server "flowmetal.replay" (list :runId run-id))))
    (if (flowmetal--true-p (plist-get answer :reproduces))
        (message "Flowmetal: run %s reproduces (%s steps): %s" run-id
                 (plist-get answer :steps)
                 (or (plist-get answer :value)
                     (concat "fault " (flowmetal--first-line (plist-get answer :fault)))))
      (message "Flowmetal: run %s does not reproduce: %s" run-id
               (or (plist-get answer :divergence) "it diverges from its log")))
    answer))

(defun flowmetal-runs-replay ()
  "Replay the run on this line from its log, and check that it reproduces."
  (interactive)
  (flowmetal--replay (flowmetal--server) (flowmetal--run-id-at-point)))

;;;; Traces

(defvar-local flowmetal--run-id nil
  "The id of the run a trace buffer shows.")

(defvar-local flowmetal--run nil
  "The Run plist of a trace buffer.")

(defvar-local flowmetal--seen nil
  "The events shown in a trace buffer, by sequence number.")

(defvar-local flowmetal--tasks nil
  "Whether a trace buffer shows a task column: its run has tasks.")

(defvar flowmetal-trace-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "RET") #'flowmetal-trace-visit-event)
    (define-key map "s" #'flowmetal-trace-show-state)
    (define-key map "c" #'flowmetal-trace-cancel)
    (define-key map "r" #'flowmetal-trace-replay)
    (define-key map "n" #'flowmetal-trace-next-event)
    (define-key map "p" #'flowmetal-trace-previous-event)
    map)
  "Keymap for `flowmetal-trace-mode'.")

(define-derived-mode flowmetal-trace-mode special-mode "Flowmetal-Trace"
  "The events of a Flowmetal run, one a line, as they are logged.
\\<flowmetal-trace-mode-map>
\\[flowmetal-trace-next-event] and \\[flowmetal-trace-previous-event] step to the next or previous event
and show the program's state there, in another window: the trace
stays in view.  \\[flowmetal-trace-visit-event] also shows the event's code.

\\{flowmetal-trace-mode-map}"
  :group 'flowmetal
  (setq-local revert-buffer-function #'flowmetal--trace-revert)
  (setq-local truncate-lines t))

(defun flowmetal--trace-buffer-name (run-id)
  "The name of the trace buffer of RUN-ID."
  (format "*flowmetal trace %s*" run-id))

(defun flowmetal--trace-buffers (server run-id)
  "The trace buffers of SERVER showing the run RUN-ID."
  (cl-remove-if-not
   (lambda (buffer)
     (with-current-buffer buffer
       (and (derived-mode-p 'flowmetal-trace-mode)
            (eq flowmetal--server server)
            flowmetal--run-id
            (string-prefix-p flowmetal--run-id run-id))))
   (buffer-list)))

(defun flowmetal--trace-open (server run-id)
  "The trace buffer of RUN-ID (an id or a unique prefix), read afresh from SERVER."
  (let* ((fresh (not (get-buffer (flowmetal--trace-buffer-name run-id))))
         (buffer (get-buffer-create (flowmetal--trace-buffer-name run-id))))
    (with-current-buffer buffer
      (unless (derived-mode-p 'flowmetal-trace-mode)
        (flowmetal-trace-mode))
      (setq flowmetal--server server
            flowmetal--run-id run-id)
      (condition-case err
          (flowmetal--trace-read)
        (error (when fresh (kill-buffer buffer))
               (signal (car err) (cdr err))))
      ;; Known by a prefix of its id: go by the whole id from now on.
      (let ((id (plist-get flowmetal--run :id)))
        (unless (equal id run-id)
          (let ((other (get-buffer (flowmetal--trace-buffer-name id))))
            (if other
                (progn (kill-buffer buffer)
                       (setq buffer (flowmetal--trace-open server id)))
              (setq flowmetal--run-id id)
              (rename-buffer (flowmetal--trace-buffer-name id)))))))
    buffer))

(defun flowmetal--trace-read ()
  "Read the whole trace of the current buffer's run and show it.
Events notified while the answer is on its way are kept: each event
is shown once, in order."
  (let ((inhibit-read-only t))
    (erase-buffer)
    (setq flowmetal--seen (make-hash-table))
    (setq flowmetal--tasks nil)
    (setq flowmetal--run nil)
    (flowmetal--trace-show-run))
  (let ((trace (flowmetal--request flowmetal--server :flowmetal/trace
                                   (list :runId flowmetal--run-id))))
    (setq flowmetal--run (flowmetal--newer-run (plist-get trace :run) flowmetal--run))
    (flowmetal--trace-show-run)
    (mapc #'flowmetal--trace-add-event (plist-get trace :events))
    (goto-char (point-min))))

(defun flowmetal--trace-revert (&rest _)
  "Read the trace again."
  (flowmetal--trace-read))

;;;###autoload
(defun flowmetal-trace (run-id)
  "Show the events of the run RUN-ID in a buffer, as they are logged.
Interactively, choose among the runs of the store.
\\<flowmetal-trace-mode-map>
\\[flowmetal-trace-visit-event] on an event shows its code, and the state
of the program there."
  (interactive (list (flowmetal--read-run-id)))
  (let ((buffer (flowmetal--trace-open (flowmetal--server) run-id)))
    (pop-to-buffer buffer)
    buffer))

(defun flowmetal--read-run-id ()
  "Read a run's id, offering the runs of the store, newest first."
  (let* ((runs (reverse (flowmetal--list
                         (flowmetal--request (flowmetal--server) :flowmetal/runs
                                             (make-hash-table)))))
         (table (mapcar (lambda (run)
                          (cons (plist-get run :id)
                                (format "  %s  %s  %s" (plist-get run :entry)
                                        (plist-get run :status)
                                        (or (plist-get run :started) ""))))
                        runs))
         (completion-extra-properties
          (list :annotation-function (lambda (id) (cdr (assoc id table))))))
    (completing-read "Trace of run: " table nil nil nil nil
                     (or (and (derived-mode-p 'flowmetal-runs-mode) (tabulated-list-get-id))
                         (caar table)))))

(defun flowmetal--trace-show-run ()
  "Show the run's summary at the top of the trace buffer."
  (let* ((inhibit-read-only t)
         (run flowmetal--run)
         ;; The summary drawn before ends where its property does: at the end of
         ;; the buffer while no event is shown yet (`next-single-property-change'
         ;; then says nil, which must not be taken for "no summary": the old one
         ;; would stay, a stray "Run ID" line above the new one).
         (end (if (get-text-property (point-min) 'flowmetal-summary)
                  (or (next-single-property-change (point-min) 'flowmetal-summary)
                      (point-max))
                (point-min))))
    (save-excursion
      (delete-region (point-min) end)
      (goto-char (point-min))
      (let ((start (point)))
        (if (null run)
            (insert (format "Run %s\n\n" flowmetal--run-id))
          (let ((status (plist-get run :status)))
            (insert (format "Run %s  %s  %s\n" (plist-get run :id) (plist-get run :entry)
                            (propertize status 'face (flowmetal--status-face status)))))
          (insert (format "Arguments: %s\n"
                          (let ((args (flowmetal--list (plist-get run :args))))
                            (if args (string-join args " ") "(none)"))))
          (insert (format "Started %s%s\n" (or (plist-get run :started) "")
                          (if (plist-get run :ended)
                              (format ", ended %s" (plist-get run :ended))
                            "")))
          (when (plist-get run :result)
            (insert (format "Result: %s\n" (plist-get run :result))))
          (when (plist-get run :error)
            (insert (format "Error: %s\n" (plist-get run :error))))
          (when (stringp (plist-get run :parent))
            (insert (format "Child run of: %s\n" (plist-get run :parent))))
          (when (plist-get run :blocked)
            (insert (format "Not run here: %s\n" (plist-get run :blocked))))
          (let ((note (flowmetal--run-unserved run)))
            (when note
              (insert (format "Note: %s\n" note))))
          (insert "\n")
          (insert (propertize (if flowmetal--tasks
                                  (format "%4s  %-24s  %-4s %-16s %s\n"
                                          "seq" "time" "task" "kind" "details")
                                (format "%4s  %-24s  %-16s %s\n" "seq" "time" "kind" "details"))
                              'face 'bold)))
        (put-text-property start (point) 'flowmetal-summary t)))))

(defun flowmetal--data-details (data &optional except)
  "DATA, the plist of an event's details, as `key=value' pairs.
Keys in EXCEPT are left out."
  (let (parts)
    (while data
      (let ((key (pop data))
            (value (pop data)))
        (unless (memq key except)
          (push (format "%s=%s" (substring (symbol-name key) 1) (flowmetal--show-value value))
                parts))))
    (mapconcat #'identity (nreverse parts) " ")))

(defun flowmetal--event-task (event)
  "The task EVENT belongs to: 0, the run's own code, unless it names another."
  (let ((task (plist-get (plist-get event :data) :task)))
    (if (integerp task) task 0)))

(defun flowmetal--event-of-tasks-p (event)
  "Whether EVENT shows that its run has tasks."
  (or (/= 0 (flowmetal--event-task event))
      (equal (plist-get event :kind) "task-spawned")))

(defun flowmetal--json-line (value)
  "VALUE, from the server's JSON, as JSON on one line."
  (condition-case nil
      (let ((json-encoding-pretty-print nil))
        (json-encode value))
    (error (flowmetal--show-value value))))

(defun flowmetal--show-value (value)
  "VALUE from the server's JSON, in a line of text."
  (cond ((stringp value) (flowmetal--first-line value))
        ((vectorp value) (mapconcat #'flowmetal--show-value value " "))
        ((and (consp value) (keywordp (car value)))
         (concat "{" (flowmetal--data-details value) "}"))
        ((null value) "null")
        ((eq value t) "true")
        ((eq value :json-false) "false")
        (t (format "%s" value))))

(defun flowmetal--event-details (event)
  "What to say of EVENT after its kind."
  (let ((data (plist-get event :data))
        (step (plist-get event :step)))
    (concat
     (if step (format "#%s " step) "")
     (pcase (plist-get event :kind)
       ("run-started"
        (format "%s %s" (plist-get data :entry)
                (flowmetal--show-value (plist-get data :args))))
       ("step-requested"
        (let ((args (plist-get data :args)) parts)
          (while args
            (push (format "%s=%s" (substring (symbol-name (pop args)) 1)
                          (flowmetal--show-value (pop args)))
                  parts))
          (string-join (cons (plist-get data :endpoint) (nreverse parts)) " ")))
       ((or "step-completed" "run-completed" "task-completed")
        (format "→ %s" (flowmetal--show-value (plist-get data :result))))
       ("task-spawned" (format "→ task %s" (plist-get data :spawned)))
       ("task-cancelled" "")
       ("signal-received"
        (format "%s ← %s" (plist-get data :name) (flowmetal--show-value (plist-get data :body))))
       ("log" (flowmetal--show-value (plist-get data :message)))
       ("timer-set"
        (let ((due (plist-get data :due)))
          (format "due %s" (if (numberp due)
                               (format-time-string "%Y-%m-%dT%H:%M:%S.%3NZ" due t)
                             (flowmetal--show-value due)))))
       ((or "run-failed" "task-failed") (flowmetal--show-value (plist-get data :error)))
       ;; (The task is in a column of its own, when the run has tasks.)
       (_ (flowmetal--data-details data '(:task)))))))

(defun flowmetal--kind-face (kind)
  "The face that shows an event of KIND."
  (pcase kind
    ((or "run-completed" "task-completed") 'success)
    ((or "run-failed" "task-failed") 'error)
    ((or "run-cancelled" "task-cancelled") 'warning)
    ("task-spawned" 'font-lock-keyword-face)
    ("signal-received" 'font-lock-constant-face)
    ((or "step-requested" "run-started") 'font-lock-function-name-face)
    ("log" 'font-lock-string-face)
    (_ 'default)))

(defun flowmetal--event-line (event)
  "The line that shows EVENT in a trace buffer.
With `flowmetal--tasks', the task it belongs to is in a column: T0, T1 ..."
  (let ((kind (plist-get event :kind)))
    (propertize
     (format "%4d  %-24s  %s%s %s\n" (plist-get event :seq) (or (plist-get event :time) "")
             (if flowmetal--tasks
                 (propertize (format "%-4s " (format "T%d" (flowmetal--event-task event)))
                             'face 'font-lock-type-face)
               "")
             (propertize (format "%-16s" kind) 'face (flowmetal--kind-face kind))
             (flowmetal--event-details event))
     'flowmetal-event event)))

(defun flowmetal--trace-add-event (event)
  "Show EVENT in the current trace buffer, in order, unless it is there.
The first event that shows the run has tasks adds the task column: the
events shown so far are drawn again with it."
  (let ((seq (plist-get event :seq)))
    (unless (gethash seq flowmetal--seen)
      (puthash seq event flowmetal--seen)
      (if (and (not flowmetal--tasks) (flowmetal--event-of-tasks-p event))
          (progn (setq flowmetal--tasks t)
                 (flowmetal--trace-redraw-events))
        (let ((inhibit-read-only t))
          (save-excursion
            (goto-char (point-max))
            (while (let ((before (and (> (point) (point-min))
                                      (get-text-property (1- (point)) 'flowmetal-event))))
                     (and before (> (plist-get before :seq) seq)))
              (forward-line -1))
            (insert (flowmetal--event-line event))))))))

(defun flowmetal--trace-redraw-events ()
  "Draw the trace buffer's summary and events again, in order."
  (let ((inhibit-read-only t)
        (line (line-number-at-pos))
        events)
    (maphash (lambda (_ event) (push event events)) flowmetal--seen)
    (flowmetal--trace-show-run)
    (save-excursion
      (goto-char (or (next-single-property-change (point-min) 'flowmetal-summary)
                     (point-max)))
      (delete-region (point) (point-max))
      (dolist (event (sort events (lambda (a b) (< (plist-get a :seq) (plist-get b :seq)))))
        (insert (flowmetal--event-line event))))
    (goto-char (point-min))
    (forward-line (1- line))))

(defun flowmetal--event-at-point ()
  "The event on this line, or an error."
  (or (get-text-property (line-beginning-position) 'flowmetal-event)
      (user-error "No event on this line")))

(defun flowmetal--trace-window-p (window)
  "Non-nil when WINDOW shows a trace buffer."
  (with-current-buffer (window-buffer window)
    (derived-mode-p 'flowmetal-trace-mode)))

(defun flowmetal--display-in-free-window (buffer _alist)
  "Show BUFFER in a window that shows no trace and is not the selected one.
A display action: nil when there is no such window."
  (let ((window (cl-find-if (lambda (window)
                              (not (or (eq window (selected-window))
                                       (flowmetal--trace-window-p window))))
                            (window-list nil 'nomini))))
    (when window
      (window--display-buffer buffer window 'reuse))))

(defun flowmetal--display-in-selected-unless-trace (buffer _alist)
  "Show BUFFER in the selected window, unless that shows a trace.
A display action, the last resort of `flowmetal--display-beside'."
  (unless (flowmetal--trace-window-p (selected-window))
    (window--display-buffer buffer (selected-window) 'reuse)))

(defun flowmetal--display-beside (buffer)
  "Show BUFFER without hiding a trace, and return its window.
Where it is shown already, else in a window that shows no trace (not
the selected one), else in a new window split off, else (no room to
split) in the selected window when that is no trace's: the trace stays
in view."
  (display-buffer buffer '((display-buffer-reuse-window
                            flowmetal--display-in-free-window
                            display-buffer-pop-up-window
                            flowmetal--display-in-selected-unless-trace)
                           (inhibit-same-window . t))))

(defun flowmetal--visit-location (location)
  "Show the code at LOCATION (a URI and an LSP range) and put point there.
The code goes in another window than a trace's.  Return the buffer."
  (let* ((path (flowmetal--uri-to-path (plist-get location :uri)))
         (buffer (or (find-file-noselect path)
                     (user-error "Cannot open %s" path)))
         (range (plist-get location :range)))
    (select-window (or (flowmetal--display-beside buffer)
                       (user-error "No window to show %s in" path)))
    (let ((start (flowmetal--point (plist-get range :start)))
          (end (flowmetal--point (plist-get range :end))))
      (goto-char start)
      (when (and (not noninteractive) (require 'pulse nil t))
        (pulse-momentary-highlight-region start end)))
    buffer))

(defun flowmetal-trace-visit-event ()
  "Go to the code of the event on this line, and show the state there.
The code is the one the run ran: the workspace file when it has not
changed since, else a read-only copy of the run's stored source."
  (interactive)
  (let ((event (flowmetal--event-at-point))
        (server (flowmetal--server))
        (run-id flowmetal--run-id))
    (let ((location (plist-get event :location)))
      (if location
          (flowmetal--visit-location location)
        (message "Flowmetal: this event has no place in the code")))
    (flowmetal--show-state server run-id (plist-get event :seq))))

(defun flowmetal--trace-step (direction)
  "Move to the event DIRECTION (1 or -1) lines away that has one; show its state.
Point stays in the trace; the state shows in another window."
  (let ((start (point))
        found)
    (while (and (not found)
                (zerop (forward-line direction))
                (not (and (> direction 0) (eobp))))
      (setq found (get-text-property (point) 'flowmetal-event)))
    (unless found
      (goto-char start)
      (user-error "No %s event" (if (> direction 0) "next" "previous")))
    (flowmetal--show-state (flowmetal--server) flowmetal--run-id (plist-get found :seq))))

(defun flowmetal-trace-next-event ()
  "Step to the next event and show the program's state there."
  (interactive)
  (flowmetal--trace-step 1))

(defun flowmetal-trace-previous-event ()
  "Step to the previous event and show the program's state there."
  (interactive)
  (flowmetal--trace-step -1))

(defun flowmetal-trace-show-state ()
  "Show the state of the program at the event on this line."
  (interactive)
  (flowmetal--show-state (flowmetal--server) flowmetal--run-id
                         (plist-get (flowmetal--event-at-point) :seq)))

(defun flowmetal-trace-cancel ()
  "Cancel the run of this trace."
  (interactive)
  (flowmetal--cancel (flowmetal--server) flowmetal--run-id))

(defun flowmetal-trace-replay ()
  "Replay the run of this trace from its log, and check that it reproduces."
  (interactive)
  (flowmetal--replay (flowmetal--server) flowmetal--run-id))

;;;; States

(defvar flowmetal-state-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "RET") #'flowmetal-state-visit-frame)
    (define-key map "n" #'next-line)
    (define-key map "p" #'previous-line)
    map)
  "Keymap for `flowmetal-state-mode'.")

(define-derived-mode flowmetal-state-mode special-mode "Flowmetal-State"
  "The state of a Flowmetal run at one of its events.

\\{flowmetal-state-mode-map}"
  :group 'flowmetal)

(defun flowmetal--location-label (location)
  "LOCATION as FILE:LINE:COLUMN (1-based)."
  (if (null location)
      ""
    (let ((start (plist-get (plist-get location :range) :start)))
      (format "%s:%d:%d" (file-name-nondirectory
                          (flowmetal--uri-to-path (plist-get location :uri)))
              (1+ (plist-get start :line)) (1+ (plist-get start :character))))))

(defun flowmetal--insert-bindings (bindings)
  "Insert BINDINGS, one `name : type = value' a line."
  (dolist (binding (flowmetal--list bindings))
    (insert (format "  %s : %s = %s\n"
                    (plist-get binding :name)
                    (or (plist-get binding :type) "?")
                    (plist-get binding :value)))))

(defun flowmetal--show-state (server run-id seq)
  "Show the state of the run RUN-ID at its event SEQ in *flowmetal state*.
SERVER finds it."
  (let ((state (flowmetal--request server :flowmetal/stateAt
                                   (list :runId run-id :seq seq)))
        (buffer (get-buffer-create "*flowmetal state*")))
    (with-current-buffer buffer
      (unless (derived-mode-p 'flowmetal-state-mode)
        (flowmetal-state-mode))
      (setq flowmetal--server server)
      (let ((inhibit-read-only t))
        (erase-buffer)
        (insert (format "Run %s at event %s: %s%s (via %s)\n"
                        (plist-get state :runId) (plist-get state :seq)
                        (plist-get state :kind)
                        (if (plist-get state :step)
                            (format ", step %s" (plist-get state :step))
                          "")
                        (plist-get state :via)))
        (let ((fields (cl-remove-if-not
                       (lambda (field) (plist-get state (car field)))
                       '((:result . "Result") (:value . "Value") (:error . "Error")))))
          (when fields
            (insert "\n")
            (dolist (field fields)
              (insert (format "%s: %s\n" (cdr field) (plist-get state (car field)))))))
        (let ((stack (flowmetal--list (plist-get state :stack))))
          (if stack
              (dolist (frame stack)
                (insert "\n")
                (insert (propertize (format "%s  %s\n" (plist-get frame :function)
                                            (flowmetal--location-label
                                             (plist-get frame :location)))
                                    'face 'bold
                                    'flowmetal-location (plist-get frame :location)))
                (flowmetal--insert-bindings (plist-get frame :bindings)))
            (when (flowmetal--list (plist-get state :bindings))
              (insert "\nBindings\n")
              (flowmetal--insert-bindings (plist-get state :bindings))))))
      (goto-char (point-min)))
    ;; Beside the trace, never in its window: stepping through the events
    ;; (n and p there) keeps both in view.
    (flowmetal--display-beside buffer)
    state))

(defun flowmetal-state-visit-frame ()
  "Go to where the function on this line is in its call."
  (interactive)
  (let ((location (save-excursion
                    (beginning-of-line)
                    (while (and (not (get-text-property (point) 'flowmetal-location))
                                (not (bobp)))
                      (forward-line -1))
                    (get-text-property (point) 'flowmetal-location))))
    (if location
        (flowmetal--visit-location location)
      (user-error "No place in the code for this"))))

;;;; Notifications

(defun flowmetal--on-trace-event (server run-id event)
  "Show EVENT of the run RUN-ID, notified by SERVER, in its trace buffers."
  (dolist (buffer (flowmetal--trace-buffers server run-id))
    (with-current-buffer buffer
      (when flowmetal--seen
        (flowmetal--trace-add-event event)))))

(defun flowmetal--on-run-updated (server run)
  "Show RUN, changed as SERVER notified, in the runs and trace buffers."
  (let ((id (plist-get run :id)))
    (dolist (buffer (flowmetal--trace-buffers server id))
      (with-current-buffer buffer
        (setq flowmetal--run (flowmetal--newer-run flowmetal--run run))
        (flowmetal--trace-show-run)))
    (flowmetal--runs-update server run)))

(cl-defmethod eglot-handle-notification
  (server (_method (eql flowmetal/traceEvent)) &key runId event &allow-other-keys)
  "Show a run's new EVENT (of run RUNID) in its trace buffers, for SERVER."
  (flowmetal--on-trace-event server runId event))

(cl-defmethod eglot-handle-notification
  (server (_method (eql flowmetal/runUpdated)) &rest run)
  "Show a new or changed RUN, from SERVER, in the runs and trace buffers."
  (flowmetal--on-run-updated server run))

(provide 'flowmetal-mode)

;;; flowmetal-mode.el ends here
