;;; package-check.el --- lint, document-check and compile the Emacs package  -*- lexical-binding: t; -*-

;;; Commentary:

;; Run by tests/editors/test_emacs_mode.py on a copy of
;; editors/emacs/flowmetal-mode.el:
;;
;;   emacs --batch -Q -l tests/editors/package-check.el FILE
;;
;; prints each problem found as `FILE:LINE:COL: KIND: MESSAGE' and exits
;; 1 when there is any:
;;
;; - package-lint (Debian 12's elpa-package-lint), with the packages
;;   installed on the system (eglot) taken as the archive it looks
;;   dependencies up in: no archive is reachable from the tests.  One
;;   warning is left out: package-lint 0.16 predates Emacs 28's release,
;;   so it calls a dependency on (emacs "28.1") uninstallable;
;; - checkdoc, without its guess at verbs in the wrong voice (it takes
;;   nouns such as "runs" and "shows" for verbs);
;; - the byte compiler, with warnings as errors.

;;; Code:

(require 'package)
(require 'checkdoc)
(require 'bytecomp)

(defvar flowmetal-check--problems 0
  "How many problems were found.")

(defun flowmetal-check--report (file line col kind message)
  "Print the problem MESSAGE of KIND at LINE and COL of FILE."
  (setq flowmetal-check--problems (1+ flowmetal-check--problems))
  (message "%s:%s:%s: %s: %s" (file-name-nondirectory file) line col kind message))

(defun flowmetal-check--package-lint (file)
  "Run package-lint on FILE."
  (let ((package-directory-list (append package-directory-list
                                        '("/usr/share/emacs/site-lisp/elpa"))))
    (package-initialize))
  (unless (require 'package-lint nil t)
    (error "package-lint is not installed (apt-get install -y elpa-package-lint)"))
  ;; The archive package-lint looks dependencies up in: what is installed.
  (setq package-archive-contents (mapcar (lambda (entry) (cons (car entry) (cdr entry)))
                                         package-alist))
  (with-temp-buffer
    (insert-file-contents file t)
    (emacs-lisp-mode)
    (pcase-dolist (`(,line ,col ,kind ,message) (package-lint-buffer))
      (unless (string-match-p "uninstallable in all released Emacs versions" message)
        (flowmetal-check--report file line col kind message)))))

(defun flowmetal-check--checkdoc (file)
  "Run checkdoc on FILE."
  (let ((checkdoc-verb-check-experimental-flag nil)
        (checkdoc-diagnostic-buffer "*checkdoc*"))
    (cl-letf (((symbol-function 'checkdoc-error)
               (lambda (point message)
                 (flowmetal-check--report file (line-number-at-pos point) 0 "checkdoc" message)
                 nil)))
      (with-current-buffer (find-file-noselect file)
        (let ((checkdoc-autofix-flag 'never))
          (checkdoc-current-buffer t))))))

(defun flowmetal-check--compile (file)
  "Byte-compile FILE with warnings as errors."
  (let ((byte-compile-error-on-warn t))
    (unless (ignore-errors (byte-compile-file file))
      (flowmetal-check--report file 0 0 "byte-compile" "does not compile cleanly (see above)"))))

(let ((file (expand-file-name (car command-line-args-left))))
  (setq command-line-args-left nil)
  (flowmetal-check--package-lint file)
  (flowmetal-check--checkdoc file)
  (flowmetal-check--compile file)
  (message "%d problems" flowmetal-check--problems)
  (kill-emacs (if (zerop flowmetal-check--problems) 0 1)))

;;; package-check.el ends here
