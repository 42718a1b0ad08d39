;;; flowmetal-mode.el --- Major mode for Flowmetal, a durable Lisp  -*- lexical-binding: t; -*-

;; Version: 0.1.0
;; Package-Requires: ((emacs "28.1"))
;; Keywords: languages, lisp

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

;;; Code:

(require 'lisp-mode)

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

(defvar eglot-server-programs)

;;;###autoload
(with-eval-after-load 'eglot
  (add-to-list 'eglot-server-programs
               '(flowmetal-mode . ("flowmetal" "lsp"))))

(provide 'flowmetal-mode)

;;; flowmetal-mode.el ends here
