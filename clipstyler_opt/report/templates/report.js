// Click an image to see it large; an output is compared with its content image: drag the slider
// (or use the arrow keys on it) to wipe between them. Esc, the close button or a click outside closes.
(function () {
  "use strict";
  let dialog = null;

  function build() {
    dialog = document.createElement("dialog");
    dialog.className = "zoom";
    dialog.innerHTML = '<div class="compare"></div><div class="controls"></div>';
    dialog.addEventListener("click", function (event) {
      if (event.target === dialog) dialog.close();
    });
    document.body.appendChild(dialog);
  }

  function open(image) {
    if (!dialog) build();
    const compare = dialog.querySelector(".compare");
    const controls = dialog.querySelector(".controls");
    compare.textContent = "";
    controls.textContent = "";
    const after = document.createElement("img");
    after.src = image.currentSrc || image.src;
    after.alt = image.alt;
    compare.appendChild(after);
    const beforeSource = image.getAttribute("data-before");
    if (beforeSource) {
      const before = document.createElement("img");
      before.className = "before";
      before.src = beforeSource;
      before.alt = "content image";
      compare.appendChild(before);
      const label = document.createElement("label");
      label.textContent = "content ◀ ▶ output ";
      const slider = document.createElement("input");
      slider.type = "range";
      slider.min = "0";
      slider.max = "100";
      slider.value = "50";
      slider.setAttribute("aria-label", "wipe between the content image and the output");
      const wipe = function () { before.style.clipPath = "inset(0 " + (100 - slider.value) + "% 0 0)"; };
      slider.addEventListener("input", wipe);
      wipe();
      label.appendChild(slider);
      controls.appendChild(label);
    }
    const caption = document.createElement("span");
    caption.textContent = image.alt;
    controls.appendChild(caption);
    const close = document.createElement("button");
    close.type = "button";
    close.textContent = "Close";
    close.addEventListener("click", function () { dialog.close(); });
    controls.appendChild(close);
    dialog.showModal();
  }

  document.addEventListener("click", function (event) {
    const target = event.target;
    if (target instanceof HTMLImageElement && target.hasAttribute("data-zoom") && !dialog?.contains(target)) {
      open(target);
    }
  });
})();
