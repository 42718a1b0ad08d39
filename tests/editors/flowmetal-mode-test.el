;;; flowmetal-mode-test.el --- ERT tests for flowmetal-mode  -*- lexical-binding: t; -*-

;;; Commentary:

;; Checks the Emacs editing support in editors/emacs/flowmetal-mode.el:
;; file association, syntax, highlighting, indentation, byte-compilation
;; and the eglot registration.  The mode holds no language logic (the
;; `flowmetal lsp' language server does all checking), so these tests
;; cover only the editing layer.  Run with:
;;
;;   emacs --batch -Q -l tests/editors/eglot-load.el -f flowmetal-test-load-eglot \
;;         -l editors/emacs/flowmetal-mode.el \
;;         -l tests/editors/flowmetal-mode-test.el -f ert-run-tests-batch-and-exit

;;; Code:

(require 'ert)
(require 'flowmetal-mode)

(defconst flowmetal-test--mode-file
  (let ((loaded (symbol-file 'flowmetal-mode 'defun)))
    (if (and loaded (string-suffix-p ".el" loaded))
        loaded
      (expand-file-name "../../editors/emacs/flowmetal-mode.el"
                        (file-name-directory
                         (or load-file-name buffer-file-name)))))
  "The source of the mode under test: the file that was loaded.")

(defun flowmetal-test--in-ci ()
  "Non-nil when running in CI, where missing tools are failures."
  (equal (getenv "CI") "true"))

(defmacro flowmetal-test--with-buffer (text &rest body)
  "Run BODY in a fontified `flowmetal-mode' buffer holding TEXT."
  (declare (indent 1))
  `(with-temp-buffer
     (insert ,text)
     (flowmetal-mode)
     (font-lock-ensure)
     (goto-char (point-min))
     ,@body))

(defun flowmetal-test--faces (needle &optional nth offset)
  "Faces at the NTH (default 1st) occurrence of NEEDLE, plus OFFSET chars.
Always a list, whether the text has one face or several."
  (goto-char (point-min))
  (dotimes (_ (or nth 1))
    (should (search-forward needle nil t)))
  (let ((face (get-text-property (+ (match-beginning 0) (or offset 0)) 'face)))
    (if (listp face) face (list face))))

(defun flowmetal-test--whole-face-p (needle face &optional nth)
  "Non-nil when every char of the NTH occurrence of NEEDLE has FACE."
  (goto-char (point-min))
  (dotimes (_ (or nth 1))
    (should (search-forward needle nil t)))
  (let ((ok t))
    (dotimes (i (length needle))
      (let ((f (get-text-property (+ (match-beginning 0) i) 'face)))
        (unless (memq face (if (listp f) f (list f)))
          (setq ok nil))))
    ok))

;;;; File association

(ert-deftest flowmetal-mode-activates-for-flow-files ()
  (let* ((dir (make-temp-file "flowmetal-test" t))
         (file (expand-file-name "demo.flow" dir)))
    (unwind-protect
        (progn
          (with-temp-file file
            (insert "(defpackage demo\n  (def x 1))\n"))
          (let ((buf (find-file-noselect file)))
            (unwind-protect
                (with-current-buffer buf
                  (should (eq major-mode 'flowmetal-mode))
                  (should (derived-mode-p 'prog-mode)))
              (kill-buffer buf))))
      (delete-directory dir t))))

;;;; Syntax

(ert-deftest flowmetal-mode-syntax-table ()
  (with-temp-buffer
    (flowmetal-mode)
    (should (eq (char-syntax ?,) ?\s))
    (should (eq (char-syntax ?\;) ?<))
    (should (eq (char-syntax ?\") ?\"))
    (dolist (c '(?\( ?\[ ?\{))
      (should (eq (char-syntax c) ?\()))
    (dolist (c '(?\) ?\] ?\}))
      (should (eq (char-syntax c) ?\))))
    (dolist (c '(?- ?+ ?! ?? ?. ?/ ?: ?* ?< ?> ?= ?_))
      (should (eq (char-syntax c) ?_)))))

(ert-deftest flowmetal-mode-symbols-and-sexps ()
  (flowmetal-test--with-buffer "(sleep!, +seconds+ [a,b] {:k 1})"
    ;; Whole symbols, commas between them.
    (search-forward "sleep")
    (should (equal (thing-at-point 'symbol t) "sleep!"))
    (search-forward "+sec")
    (should (equal (thing-at-point 'symbol t) "+seconds+"))
    ;; Brackets and braces balance.
    (goto-char (point-min))
    (forward-sexp)
    (should (eobp))))

(ert-deftest flowmetal-mode-comment-commands ()
  (flowmetal-test--with-buffer "(def x 1)"
    (comment-region (point-min) (point-max))
    (should (string-prefix-p ";" (buffer-string)))
    (uncomment-region (point-min) (point-max))
    (should (equal (buffer-string) "(def x 1)"))))

;;;; Highlighting

(defconst flowmetal-test--highlight-sample
  "(defpackage demo
  ;; wait a while
  (require [flowmetal.time :refer [sleep! +seconds+]])
  (defenum color +red+ +blue+)
  (defn wait [n : int? s : str? :default \"a \\\"b\\\" ; c\\n\"]
    : int?
    \"\"\"Docs over
two lines, \"quoted\" ; not a comment\"\"\"
    (sleep! (make-duration n +seconds+))
    (if true -12 3.5e-2)))
"
  "Flowmetal text with one of each highlighted category.")

(ert-deftest flowmetal-mode-font-lock-comment ()
  (flowmetal-test--with-buffer flowmetal-test--highlight-sample
    (should (memq 'font-lock-comment-face (flowmetal-test--faces "wait a while")))
    (should (flowmetal-test--whole-face-p "wait a while" 'font-lock-comment-face))))

(ert-deftest flowmetal-mode-font-lock-string ()
  (flowmetal-test--with-buffer flowmetal-test--highlight-sample
    ;; The whole "..." string, including the escaped quotes and the `;'.
    (should (flowmetal-test--whole-face-p "\"a \\\"b\\\" ; c\\n\""
                                          'font-lock-string-face))
    ;; Escapes get their own face on top.
    (should (memq 'flowmetal-escape-face (flowmetal-test--faces "\\\"b")))
    (should (memq 'flowmetal-escape-face (flowmetal-test--faces "\\n\"")))
    ;; What follows the string is code again.
    (should (memq 'font-lock-type-face (flowmetal-test--faces "int?" 2)))))

(ert-deftest flowmetal-mode-font-lock-triple-quoted-string ()
  (flowmetal-test--with-buffer flowmetal-test--highlight-sample
    (should (flowmetal-test--whole-face-p
             "\"\"\"Docs over\ntwo lines, \"quoted\" ; not a comment\"\"\""
             'font-lock-string-face))
    ;; The second line is inside the string.
    (should (eq (nth 3 (syntax-ppss (progn (goto-char (point-min))
                                           (search-forward "two lines")))) t))
    ;; Verbatim: no escape face inside, and the `;' starts no comment.
    (should-not (memq 'font-lock-comment-face (flowmetal-test--faces "; not a")))
    ;; Code resumes after the closing quotes.
    (should (memq 'flowmetal-endpoint-face (flowmetal-test--faces "sleep!" 2)))
    (should-not (nth 3 (syntax-ppss (point-max))))))

(ert-deftest flowmetal-mode-triple-quoted-string-is-verbatim ()
  ;; A backslash before the closing quotes does not escape them.
  (flowmetal-test--with-buffer "(def s \"\"\"C:\\dir\\\"\"\"\n  :after)"
    (should (memq 'font-lock-string-face (flowmetal-test--faces "dir")))
    (should (memq 'flowmetal-keyword-face (flowmetal-test--faces ":after")))
    (should-not (memq 'flowmetal-escape-face (flowmetal-test--faces "\\dir"))))
  ;; An empty string is not the start of a triple-quoted one.
  (flowmetal-test--with-buffer "(f \"\" :a\n \"x\" :b)"
    (should (memq 'flowmetal-keyword-face (flowmetal-test--faces ":a")))
    (should (memq 'flowmetal-keyword-face (flowmetal-test--faces ":b")))))

(ert-deftest flowmetal-mode-triple-quoted-string-after-edit ()
  ;; Opening a triple-quoted string turns the following lines into text,
  ;; closing it turns them back into code.
  (flowmetal-test--with-buffer "(def s 1)\n(def t :k)\n"
    (should (memq 'flowmetal-keyword-face (flowmetal-test--faces ":k")))
    (goto-char (point-min))
    (search-forward "s ")
    (insert "\"\"\"")
    (font-lock-ensure)
    (should (memq 'font-lock-string-face (flowmetal-test--faces ":k")))
    (goto-char (point-max))
    (insert "\"\"\"\n(def u :z)\n")
    (font-lock-ensure)
    (should (memq 'flowmetal-keyword-face (flowmetal-test--faces ":z")))))

(ert-deftest flowmetal-mode-font-lock-keywords-and-literals ()
  (flowmetal-test--with-buffer flowmetal-test--highlight-sample
    (should (flowmetal-test--whole-face-p ":refer" 'flowmetal-keyword-face))
    (should (flowmetal-test--whole-face-p ":default" 'flowmetal-keyword-face))
    (should (memq 'flowmetal-type-marker-face (flowmetal-test--faces " : int?" 1 1)))
    (should (flowmetal-test--whole-face-p "+seconds+" 'flowmetal-enum-member-face))
    (should (flowmetal-test--whole-face-p "+red+" 'flowmetal-enum-member-face))
    (should (flowmetal-test--whole-face-p "true" 'font-lock-constant-face))
    (should (flowmetal-test--whole-face-p "-12" 'flowmetal-number-face))
    (should (flowmetal-test--whole-face-p "3.5e-2" 'flowmetal-number-face))
    (should (flowmetal-test--whole-face-p "int?" 'font-lock-type-face))))

(ert-deftest flowmetal-mode-font-lock-forms-and-names ()
  (flowmetal-test--with-buffer flowmetal-test--highlight-sample
    (should (flowmetal-test--whole-face-p "defn" 'font-lock-keyword-face))
    (should (flowmetal-test--whole-face-p "wait" 'font-lock-function-name-face 2))
    (should (flowmetal-test--whole-face-p "defpackage" 'font-lock-keyword-face))
    (should (flowmetal-test--whole-face-p "require" 'font-lock-keyword-face))
    (should (flowmetal-test--whole-face-p "if" 'font-lock-keyword-face))
    (should (flowmetal-test--whole-face-p "color" 'font-lock-type-face))
    (should (flowmetal-test--whole-face-p "sleep!" 'flowmetal-endpoint-face))
    (should (flowmetal-test--whole-face-p "sleep!" 'flowmetal-endpoint-face 2))
    ;; An ordinary call is left plain.
    (should (null (flowmetal-test--faces "make-duration")))))

;;;; Indentation

(defconst flowmetal-test--indented
  "(defpackage demo
  ;; Waiting.
  (require
    [flowmetal.time :refer [sleep! +seconds+]]
    [http.request :as http])
  (defrecord point [x : int?, y : int?]
    \"A point.\")
  (defn wait [n : int?
              f : (fn? [] a)
              :default nil]
    : int?
    \"\"\"Wait for
a while.\"\"\"
    (let [d (make-duration n
                           +seconds+)
          s \"x\"]
      (sleep! d)
      (http/post! \"u\"
                  :data s)
      (match d
        [(duration x +days+)
         x]
        [_ 0])
      (if (int? n)
        {:a 1
         :b 2}
        (cond
          (= n 0) :zero
          :else false)))))
"
  "A sample in the expected indentation.")

(ert-deftest flowmetal-mode-indent-region ()
  (with-temp-buffer
    (flowmetal-mode)
    ;; The sample with every line pushed flush left (except inside the
    ;; triple-quoted string, which indentation must leave alone).
    (insert (replace-regexp-in-string "^[ \t]+" "" flowmetal-test--indented))
    (indent-region (point-min) (point-max))
    (should (equal (buffer-string) flowmetal-test--indented))
    ;; Indenting again changes nothing.
    (indent-region (point-min) (point-max))
    (should (equal (buffer-string) flowmetal-test--indented))))

(ert-deftest flowmetal-mode-indent-line ()
  (flowmetal-test--with-buffer "(defn f [x]\n(when x\n(g x)))"
    (forward-line 1)
    (indent-according-to-mode)
    (forward-line 1)
    (indent-according-to-mode)
    (should (equal (buffer-string) "(defn f [x]\n  (when x\n    (g x)))"))))

;;;; Byte-compilation

(ert-deftest flowmetal-mode-byte-compiles-without-warnings ()
  (let* ((dir (make-temp-file "flowmetal-compile" t))
         (copy (expand-file-name "flowmetal-mode.el" dir))
         (byte-compile-error-on-warn t))
    (unwind-protect
        (progn
          (copy-file flowmetal-test--mode-file copy)
          (should (byte-compile-file copy))
          (should (file-exists-p (concat copy "c"))))
      (delete-directory dir t))))

;;;; Trace buffers: the summary, stepping, windows

(ert-deftest flowmetal-mode-trace-summary-is-drawn-once ()
  ;; Read afresh, a trace shows "Run ID" until the run's summary comes;
  ;; the summary then replaces it, leaving no stray "Run ID" line.
  (with-temp-buffer
    (flowmetal-trace-mode)
    (setq flowmetal--run-id "ab12" flowmetal--run nil flowmetal--seen (make-hash-table))
    (flowmetal--trace-show-run)
    (should (equal (buffer-substring-no-properties (point-min) (point-max)) "Run ab12\n\n"))
    (setq flowmetal--run (list :id "ab12" :entry "demo/nap" :status "completed" :args [] :started "t"))
    (flowmetal--trace-show-run)
    (flowmetal--trace-add-event (flowmetal-mode-test--event 1 "run-started" nil :entry "demo/nap" :args []))
    (let ((lines (split-string (buffer-substring-no-properties (point-min) (point-max)) "\n" t)))
      (should (equal (cl-remove-if-not (lambda (line) (string-prefix-p "Run " line)) lines)
                     '("Run ab12  demo/nap  completed")))
      (should (string-match-p "run-started" (car (last lines)))))))

(defun flowmetal-mode-test--trace-buffer (&rest events)
  "A trace buffer, shown alone in the selected window, holding EVENTS."
  (let ((buffer (get-buffer-create "*flowmetal trace t1*")))
    (with-current-buffer buffer
      (flowmetal-trace-mode)
      (setq flowmetal--run-id "t1" flowmetal--seen (make-hash-table)
            flowmetal--run (list :id "t1" :entry "demo/nap" :status "completed" :args [] :started "t"))
      (flowmetal--trace-show-run)
      (mapc #'flowmetal--trace-add-event events)
      (goto-char (point-min)))
    (delete-other-windows)
    (switch-to-buffer buffer)
    buffer))

(ert-deftest flowmetal-mode-trace-n-and-p-step-through-states-beside-the-trace ()
  (let* ((trace (flowmetal-mode-test--trace-buffer
                 (flowmetal-mode-test--event 1 "run-started" nil :entry "demo/nap" :args [])
                 (flowmetal-mode-test--event 2 "timer-fired" nil)
                 (flowmetal-mode-test--event 3 "run-completed" nil :result "11")))
         (trace-window (selected-window))
         shown)
    (unwind-protect
        (cl-letf (((symbol-function 'flowmetal--server) (lambda () 'server))
                  ((symbol-function 'flowmetal--request)
                   (lambda (_server _method params)
                     (push (plist-get params :seq) shown)
                     (list :runId "t1" :seq (plist-get params :seq) :kind "k" :via "replay"))))
          (should (eq (key-binding "n") #'flowmetal-trace-next-event))
          (should (eq (key-binding "p") #'flowmetal-trace-previous-event))
          (execute-kbd-macro "n")
          (execute-kbd-macro "n")
          (execute-kbd-macro "p")
          (should (equal (reverse shown) '(1 2 1)))
          (should (equal (plist-get (get-text-property (point) 'flowmetal-event) :seq) 1))
          ;; Point stays in the trace, still in its window; the state is in another one.
          (should (eq (selected-window) trace-window))
          (should (eq (window-buffer trace-window) trace))
          (let ((state-window (get-buffer-window "*flowmetal state*")))
            (should state-window)
            (should-not (eq state-window trace-window)))
          (should-error (flowmetal-trace-previous-event) :type 'user-error))
      (kill-buffer trace)
      (when (get-buffer "*flowmetal state*") (kill-buffer "*flowmetal state*")))))

(ert-deftest flowmetal-mode-state-never-takes-the-trace-window ()
  ;; Two windows, the code selected and the trace in the other: the state
  ;; goes in neither the trace's window nor over it.
  (let* ((trace (flowmetal-mode-test--trace-buffer))
         (trace-window (selected-window))
         (code (get-buffer-create "code.flow"))
         (code-window (split-window trace-window nil 'above)))
    (unwind-protect
        (progn
          (set-window-buffer code-window code)
          (select-window code-window)
          (let ((window (flowmetal--display-beside (get-buffer-create "*flowmetal state*"))))
            (should window)
            (should-not (eq window trace-window))
            (should (eq (window-buffer trace-window) trace))))
      (delete-other-windows)
      (mapc #'kill-buffer (list trace code "*flowmetal state*")))))

;;;; Which function to run

(defun flowmetal-mode-test--lens (entry from to)
  "A run lens of ENTRY whose definition spans lines FROM to TO (0-based)."
  (list :range (list :start (list :line from :character 8) :end (list :line from :character 12))
        :uri "file:///x.flow" :entry entry :params []
        :definitionRange (list :start (list :line from :character 2) :end (list :line to :character 10))))

(ert-deftest flowmetal-mode-run-picks-the-function-point-is-in ()
  (with-temp-buffer
    (insert "(defpackage demo\n  (defn one []\n    1)\n\n  (defn two []\n    (+ 1\n       1)))\n")
    (let ((lenses (list (flowmetal-mode-test--lens "demo/one" 1 2)
                        (flowmetal-mode-test--lens "demo/two" 4 6)))
          asked)
      ;; Anywhere inside `two', not only on its name.
      (goto-char (point-min))
      (search-forward "(+ 1\n       1")
      (should (equal (plist-get (flowmetal--lens-at-point lenses) :entry) "demo/two"))
      (goto-char (point-min))
      (search-forward "1)")
      (should (equal (plist-get (flowmetal--lens-at-point lenses) :entry) "demo/one"))
      ;; Outside every function: a question offering the entries, with a default.
      (goto-char (point-min))
      (cl-letf (((symbol-function 'completing-read)
                 (lambda (prompt collection &rest args)
                   (setq asked (list prompt collection (nth 4 args)))
                   (nth 4 args))))
        (should (equal (plist-get (flowmetal--lens-at-point lenses) :entry) "demo/one")))
      (should (equal asked '("Run function (default demo/one): " ("demo/one" "demo/two") "demo/one"))))))

;;;; The language server

(load (expand-file-name "eglot-load.el" (file-name-directory (or load-file-name buffer-file-name)))
      nil t)

(defvar eglot-server-programs)
(defvar eglot-connect-hook)

(ert-deftest flowmetal-mode-registers-language-server ()
  (let ((have-eglot (flowmetal-test-load-eglot)))
    (unless (flowmetal-test--in-ci)
      (skip-unless have-eglot))
    (should have-eglot)
    (should (equal (alist-get 'flowmetal-mode eglot-server-programs)
                   '("flowmetal" "lsp" :initializationOptions
                     flowmetal-initialization-options)))
    ;; The run settings go to the server as it starts, and again after
    ;; eglot's own `workspace/didChangeConfiguration'.
    (should (memq #'flowmetal--send-settings eglot-connect-hook))
    (let ((flowmetal-store "state/runs.db")
          (flowmetal-serve "http://127.0.0.1:8765")
          (flowmetal-token nil))
      (should (equal (flowmetal-initialization-options 'a-server)
                     '(:store "state/runs.db" :serve "http://127.0.0.1:8765"
                       :token nil :trusted :json-false))))
    ;; Directory-local settings are safe for strings, not for other values.
    (should (safe-local-variable-p 'flowmetal-store "other.db"))
    (should-not (safe-local-variable-p 'flowmetal-store '(eval danger)))
    (should-not (safe-local-variable-p 'flowmetal-token "secret"))
    ;; A project's files may name a serve on this machine, not one elsewhere.
    (should (safe-local-variable-p 'flowmetal-serve "http://127.0.0.1:8700"))
    (should (safe-local-variable-p 'flowmetal-serve "http://localhost:8700/"))
    (should-not (safe-local-variable-p 'flowmetal-serve "http://evil.example:8700"))
    (should-not (safe-local-variable-p 'flowmetal-serve "http://127.0.0.1.evil.example/"))))

(ert-deftest flowmetal-mode-trust-is-the-users-to-give ()
  (let* ((dir (file-name-as-directory (make-temp-file "flowmetal-trust" t)))
         (mine (expand-file-name "mine/" dir))
         (theirs (expand-file-name "theirs/" dir))
         (default-directory mine)
         (flowmetal-store nil)
         (flowmetal-serve nil)
         (flowmetal-token nil)
         (process-environment (cons "FLOWMETAL_STORE" process-environment)))
    (unwind-protect
        (progn
          (make-directory mine t)
          (make-directory theirs t)
          ;; Nothing is trusted until the user says so.
          (let ((flowmetal-trusted-stores nil))
            (should (eq (plist-get (flowmetal-initialization-options 'a-server) :trusted) :json-false)))
          ;; A listed directory trusts the stores inside it; a listed file, that store.
          (let ((flowmetal-trusted-stores (list mine)))
            (should (eq (plist-get (flowmetal-initialization-options 'a-server) :trusted) t))
            (should (flowmetal-store-trusted-p (expand-file-name ".flowmetal/store.db" mine)))
            (should-not (flowmetal-store-trusted-p (expand-file-name ".flowmetal/store.db" theirs)))
            (let ((flowmetal-store "../theirs/store.db"))
              (should (eq (plist-get (flowmetal-initialization-options 'a-server) :trusted) :json-false))))
          (let ((flowmetal-trusted-stores (list (expand-file-name "theirs/store.db" dir)))
                (flowmetal-store "../theirs/store.db"))
            (should (eq (plist-get (flowmetal-initialization-options 'a-server) :trusted) t)))
          ;; With a serve, the serve drives the runs: there is no store to trust.
          (let ((flowmetal-trusted-stores (list dir))
                (flowmetal-serve "http://127.0.0.1:8700"))
            (should (eq (plist-get (flowmetal-initialization-options 'a-server) :trusted) :json-false)))
          ;; Directory local variables cannot grant it.
          (should (risky-local-variable-p 'flowmetal-trusted-stores))
          (should-not (safe-local-variable-p 'flowmetal-trusted-stores (list dir))))
      (delete-directory dir t))))

(ert-deftest flowmetal-mode-runs-say-why-they-wait ()
  (with-temp-buffer
    (flowmetal-runs-mode)
    (setq flowmetal--runs
          (list (list :id "b10c" :entry "demo/nap" :status "pending" :started "t"
                      :blocked "the store is not trusted")
                (list :id "d0ne" :entry "demo/nap" :status "completed" :started "t"
                      :result "5")))
    (let ((rows (flowmetal--runs-entries)))
      (should (equal (substring-no-properties (aref (cadr (assoc "b10c" rows)) 4))
                     "not run here: the store is not trusted"))
      (should (equal (aref (cadr (assoc "d0ne" rows)) 4) "5")))))

(ert-deftest flowmetal-mode-runs-say-what-nobody-serves ()
  (with-temp-buffer
    (flowmetal-runs-mode)
    (setq flowmetal--runs
          (list (list :id "5e4e" :entry "acme.billing/pay" :status "waiting" :started "t"
                      :unserved ["acme.billing/charge!"])
                (list :id "0bed" :entry "acme.billing/pay" :status "waiting" :started "t"
                      :unserved [])))
    (let ((rows (flowmetal--runs-entries)))
      (should (equal (substring-no-properties (aref (cadr (assoc "5e4e" rows)) 4))
                     "waiting on acme.billing/charge!: no live process serves it"))
      (should (equal (aref (cadr (assoc "0bed" rows)) 4) "")))))

(ert-deftest flowmetal-mode-trace-shows-a-received-signal ()
  (should (equal (flowmetal--event-details
                  (list :seq 9 :kind "signal-received" :step 3
                        :data (list :name "approve" :body (list :by "ann" :ok t)
                                    :signal 1 :sent 1795000000.5)))
                 "#3 approve ← {by=ann ok=true}"))
  (should (equal (flowmetal--event-details
                  (list :seq 10 :kind "signal-received" :step 4
                        :data (list :name "go" :body nil :signal 2 :sent 1795000001.0)))
                 "#4 go ← null")))

(ert-deftest flowmetal-mode-runs-list-child-runs-under-their-parent ()
  (with-temp-buffer
    (flowmetal-runs-mode)
    ;; Newest first, as the buffer keeps them; a grandchild, a run whose parent is
    ;; not listed, and two runs that name each other (a store edited by hand).
    (setq flowmetal--runs
          (list (list :id "c2" :entry "fleet/reboot" :status "completed" :started "t" :parent "p1")
                (list :id "g1" :entry "fleet/ping" :status "completed" :started "t" :parent "c1")
                (list :id "c1" :entry "fleet/reboot" :status "completed" :started "t" :parent "p1")
                (list :id "o1" :entry "fleet/reboot" :status "failed" :started "t" :parent "gone")
                (list :id "x1" :entry "demo/x" :status "completed" :started "t" :parent "x2")
                (list :id "x2" :entry "demo/y" :status "completed" :started "t" :parent "x1")
                (list :id "p1" :entry "fleet/reboot-all" :status "completed" :started "t" :parent nil)))
    (let ((rows (flowmetal--runs-entries)))
      (should (equal (mapcar #'car rows) '("o1" "x1" "x2" "p1" "c2" "c1" "g1")))
      (should (equal (mapcar (lambda (row) (aref (cadr row) 1)) rows)
                     '("fleet/reboot" "demo/x" "demo/y" "fleet/reboot-all"
                       "└ fleet/reboot" "└ fleet/reboot" "  └ fleet/ping"))))
    ;; Without `parent', the order and the rows are as they always were.
    (setq flowmetal--runs
          (list (list :id "b" :entry "demo/nap" :status "completed" :started "t2" :result "5")
                (list :id "a" :entry "demo/nap" :status "completed" :started "t1" :result "3")))
    (should (equal (flowmetal--runs-entries)
                   (list (list "b" (vector "b" "demo/nap" (propertize "completed" 'face 'success) "t2" "5"))
                         (list "a" (vector "a" "demo/nap" (propertize "completed" 'face 'success) "t1" "3")))))))

(defun flowmetal-mode-test--event (seq kind task &rest data)
  "An event as eglot gives it: SEQ, KIND, and DATA with its TASK (none when nil)."
  (list :seq seq :time "2026-11-28T14:00:00.100Z" :kind kind :step seq
        :data (if task (append data (list :task task)) data) :location nil))

(defun flowmetal-mode-test--trace (run &rest events)
  "The lines of a trace buffer showing RUN and EVENTS, added one by one."
  (with-temp-buffer
    (flowmetal-trace-mode)
    (setq flowmetal--run-id (plist-get run :id)
          flowmetal--run run
          flowmetal--seen (make-hash-table))
    (flowmetal--trace-show-run)
    (mapc #'flowmetal--trace-add-event events)
    (split-string (buffer-substring-no-properties (point-min) (point-max)) "\n" t)))

(ert-deftest flowmetal-mode-trace-has-a-task-column-when-the-run-has-tasks ()
  (let* ((run (list :id "f1ee" :entry "fleet/reboot-all" :status "completed" :args []
                    :started "t" :parent nil))
         (lines (flowmetal-mode-test--trace
                 run
                 (flowmetal-mode-test--event 1 "run-started" 0 :entry "reboot-all" :args [])
                 (flowmetal-mode-test--event 2 "timer-fired" 0)
                 (flowmetal-mode-test--event 3 "task-spawned" 0 :spawned 1)
                 ;; Out of order, as a notification may come: it goes in its place.
                 (flowmetal-mode-test--event 6 "task-completed" 1 :result "\"web-1 up\"")
                 (flowmetal-mode-test--event 4 "signal-received" 1 :name "go"
                                             :body '(:by "ann" :hosts [1 2]))
                 (flowmetal-mode-test--event 5 "task-failed" 2 :error "division by zero\n  at x")
                 (flowmetal-mode-test--event 7 "run-completed" 0 :result "1")))
         (events (cl-remove-if-not (lambda (line) (string-match-p "^ +[0-9]+  " line)) lines)))
    (should (member "Run f1ee  fleet/reboot-all  completed" lines))
    (should (cl-find-if (lambda (line) (string-match-p "^ seq  time +task kind +details$" line)) lines))
    (should (equal (mapcar (lambda (line) (nth 2 (split-string line " +" t))) events)
                   '("T0" "T0" "T0" "T1" "T2" "T1" "T0")))
    (should (string-suffix-p "T0   task-spawned     #3 → task 1" (nth 2 events)))
    (should (string-suffix-p "T1   signal-received  #4 go ← {by=ann hosts=1 2}" (nth 3 events)))
    (should (string-suffix-p "T2   task-failed      #5 division by zero …" (nth 4 events)))
    (should (string-suffix-p "T1   task-completed   #6 → \"web-1 up\"" (nth 5 events)))
    (should (string-suffix-p "T0   timer-fired      #2 " (nth 1 events)))))

(ert-deftest flowmetal-mode-trace-without-tasks-is-unchanged ()
  ;; Events naming task 0, or no task: no column, and no `task=0' in the details.
  (dolist (task '(0 nil))
    (let* ((run (list :id "d0ne" :entry "demo/nap" :status "completed" :args ["5"] :started "t"))
           (lines (flowmetal-mode-test--trace
                   run
                   (flowmetal-mode-test--event 1 "run-started" task :entry "demo/nap" :args ["5"])
                   (flowmetal-mode-test--event 2 "timer-fired" task)
                   (flowmetal-mode-test--event 3 "run-completed" task :result "11"))))
      (should (member (format "%4s  %-24s  %-16s %s" "seq" "time" "kind" "details") lines))
      (should (member (format "%4d  %-24s  %-16s %s" 2 "2026-11-28T14:00:00.100Z" "timer-fired" "#2 ")
                      lines))
      (should (member (format "%4d  %-24s  %-16s %s" 3 "2026-11-28T14:00:00.100Z" "run-completed" "#3 → 11")
                      lines))
      (should-not (cl-find-if (lambda (line) (string-match-p "T0\\|task" line)) lines))
      (should-not (cl-find-if (lambda (line) (string-prefix-p "Child run of" line)) lines))))
  ;; A child run's trace names its parent.
  (should (member "Child run of: f1ee"
                  (flowmetal-mode-test--trace (list :id "c1" :entry "fleet/reboot" :status "running"
                                                    :args [] :started "t" :parent "f1ee")))))

(ert-deftest flowmetal-mode-run-keys ()
  (with-temp-buffer
    (flowmetal-mode)
    (should (eq (key-binding (kbd "C-c C-r")) #'flowmetal-run))
    (should (eq (key-binding (kbd "C-c C-l")) #'flowmetal-runs))))

(ert-deftest flowmetal-mode-run-refuses-other-buffers ()
  ;; The run command works on Flowmetal buffers only, before any server talk.
  (with-temp-buffer
    (fundamental-mode)
    (should-error (flowmetal-run) :type 'user-error)))

(provide 'flowmetal-mode-test)

;;; flowmetal-mode-test.el ends here
