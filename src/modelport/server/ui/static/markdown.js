// Markdown to elements, for untrusted text (what a model answers).
//
// No markup in the text is ever parsed as HTML: it is read line by line into
// the few elements chat answers use (paragraphs, headings, lists, quotes, code
// blocks, rules; code, bold, italic, strike and links inline) and every piece
// of text becomes a text node. `<img src=x onerror=…>` stays those characters.
// Links open only http(s) and mailto URLs, without the page as referrer.

import { h } from "./dom.js";

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const BULLET = /^(\s*)[-*+]\s+(.*)$/;
const NUMBERED = /^(\s*)(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;

/** The elements of `text`, appended to a new fragment. */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  renderBlocks(lines, fragment);
  return fragment;
}

function renderBlocks(lines, parent) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trimStart().startsWith(fence[1])) {
        body.push(lines[i]);
        i += 1;
      }
      i += 1; // the closing fence (or the end of a stream still arriving)
      const code = h("code", fence[2] ? { class: `language-${fence[2]}` } : {}, body.join("\n"));
      parent.append(
        h("figure", { class: "code" },
          fence[2] ? h("figcaption", {}, fence[2]) : null,
          h("pre", { tabindex: "0" }, code)),
      );
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      // Headings in an answer sit below the page's own: h3 to h6.
      const level = Math.min(6, heading[1].length + 2);
      parent.append(inline(h(`h${level}`), heading[2]));
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      parent.append(h("hr"));
      i += 1;
      continue;
    }
    if (QUOTE.test(line)) {
      const quoted = [];
      while (i < lines.length && QUOTE.test(lines[i])) {
        quoted.push(QUOTE.exec(lines[i])[1]);
        i += 1;
      }
      const quote = h("blockquote");
      renderBlocks(quoted, quote);
      parent.append(quote);
      continue;
    }
    if (BULLET.test(line) || NUMBERED.test(line)) {
      i = renderList(lines, i, parent);
      continue;
    }
    const paragraph = [];
    while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) {
      paragraph.push(lines[i]);
      i += 1;
    }
    if (!paragraph.length) {
      // A line that looks like a block start but is not one on its own: keep it as text.
      paragraph.push(lines[i]);
      i += 1;
    }
    parent.append(inline(h("p"), paragraph.join("\n")));
  }
}

function startsBlock(line) {
  return (
    FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) ||
    BULLET.test(line) || NUMBERED.test(line)
  );
}

function renderList(lines, start, parent) {
  const numbered = NUMBERED.test(lines[start]);
  const first = numbered ? NUMBERED.exec(lines[start]) : null;
  const list = numbered ? h("ol", first[2] !== "1" ? { start: first[2] } : {}) : h("ul");
  let i = start;
  while (i < lines.length) {
    const match = numbered ? NUMBERED.exec(lines[i]) : BULLET.exec(lines[i]);
    if (!match) break;
    const item = [numbered ? match[3] : match[2]];
    i += 1;
    // Continuation lines: indented, or not starting a new item or block.
    while (i < lines.length && lines[i].trim() && /^\s{2,}/.test(lines[i]) &&
           !BULLET.test(lines[i]) && !NUMBERED.test(lines[i])) {
      item.push(lines[i].trim());
      i += 1;
    }
    const nested = [];
    while (i < lines.length && /^\s{2,}/.test(lines[i]) &&
           (BULLET.test(lines[i]) || NUMBERED.test(lines[i]))) {
      nested.push(lines[i].replace(/^\s{2,4}/, ""));
      i += 1;
    }
    const li = inline(h("li"), item.join("\n"));
    if (nested.length) renderBlocks(nested, li);
    list.append(li);
    while (i < lines.length && !lines[i].trim() && i + 1 < lines.length &&
           (numbered ? NUMBERED : BULLET).test(lines[i + 1])) {
      i += 1; // a blank line between items keeps the list going
    }
  }
  parent.append(list);
  return i;
}

// Inline: the earliest of these wins; its inside is rendered again (but code stays text).
const INLINE = [
  ["code", /(`+)([\s\S]*?[^`])\1(?!`)/],
  ["link", /\[([^\]\n]+)\]\(\s*([^\s()]+)\s*\)/],
  ["strong", /(\*\*|__)(?=\S)([\s\S]*?\S)\1/],
  ["del", /~~(?=\S)([\s\S]*?\S)~~/],
  ["em", /(\*|_)(?=[^\s*_])([\s\S]*?[^\s*_])\1(?![\w*])/],
  ["url", /\bhttps?:\/\/[^\s<>()]*[^\s<>().,;:!?'"]/],
];

function inline(element, text) {
  let rest = text;
  while (rest) {
    let best = null;
    for (const [kind, pattern] of INLINE) {
      const match = pattern.exec(rest);
      if (match && (best === null || match.index < best.match.index)) best = { kind, match };
    }
    if (best === null) {
      element.append(document.createTextNode(rest));
      break;
    }
    const { kind, match } = best;
    if (match.index) element.append(document.createTextNode(rest.slice(0, match.index)));
    element.append(inlineElement(kind, match));
    rest = rest.slice(match.index + match[0].length);
  }
  return element;
}

function inlineElement(kind, match) {
  switch (kind) {
    case "code": {
      const text = match[2];
      const trimmed = /^ .* $/.test(text) ? text.slice(1, -1) : text;
      return h("code", {}, trimmed);
    }
    case "link":
      return link(match[2], match[1]);
    case "url":
      return link(match[0], match[0]);
    case "strong":
      return inline(h("strong"), match[2]);
    case "del":
      return inline(h("del"), match[1]);
    default:
      return inline(h("em"), match[2]);
  }
}

/** A link to a web or mail address; anything else (javascript:, data:) stays text. */
function link(href, label) {
  let url = null;
  try {
    url = new URL(href);
  } catch {
    url = null;
  }
  if (!url || !["http:", "https:", "mailto:"].includes(url.protocol)) {
    return document.createTextNode(label === href ? href : `${label} (${href})`);
  }
  return inline(h("a", { href: url.href, rel: "noopener noreferrer nofollow", target: "_blank" }), label);
}
