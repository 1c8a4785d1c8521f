// Approving a restore in the Wali Data's browser.
//
// The passphrase is typed here and used here: the PD's identity is
// unwrapped in this page, sealed into the envelope for the restoring
// agent's own key, and only the envelope is posted. Neither the passphrase
// nor the identity is ever sent to the controller (docs/security-model.md,
// "Approving in the browser", says what this does and does not protect
// against).
//
// The page (console/restores) provides a form:
//   <form id="approve" data-request data-material data-approve data-csrf
//         data-done data-msg-*>  with  <input type="password" id="passphrase">
// and a status line #approve-status. Messages come from the page (the
// console's catalogues, in the reader's language); English is the fallback.
import { Decrypter, Encrypter, armor, identityToRecipient } from "./age.js";

const FORMAT = "cadang-restore-envelope";

const form = document.getElementById("approve");
if (form) {
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    approve(form).catch((e) => show(form, "failed", String(e && e.message ? e.message : e), true));
  });
}

const FALLBACK = {
  fetching: "Fetching the approval material…",
  unwrapping: "Unwrapping the key with your passphrase (this takes a few seconds)…",
  sealing: "Sealing the envelope for the restoring agent…",
  sending: "Sending the envelope…",
  done: "Approved. The agent will restore; follow the progress on this page.",
  wrong: "The passphrase does not open this PD's key. Nothing was sent.",
  mismatch: "The key in the approval material is not this PD's key. Nothing was sent; tell the administrator.",
  failed: "The approval failed:",
  empty: "Type the passphrase first.",
};

function message(form, key) {
  const name = "msg" + key[0].toUpperCase() + key.slice(1);
  return form.dataset[name] || FALLBACK[key];
}

function show(form, key, detail, isError) {
  const out = document.getElementById("approve-status");
  if (!out) return;
  out.textContent = message(form, key) + (detail ? " " + detail : "");
  out.dataset.state = key;
  out.classList.toggle("error", !!isError);
}

async function approve(form) {
  const input = document.getElementById("passphrase");
  const button = form.querySelector("button[type=submit]");
  const passphrase = input.value;
  // The field is cleared at once: nothing in the page keeps the text.
  input.value = "";
  if (!passphrase) return show(form, "empty", "", true);
  if (button) button.disabled = true;
  try {
    show(form, "fetching");
    const material = await fetchMaterial(form);
    show(form, "unwrapping");
    const identity = await unwrapIdentity(material, passphrase);
    if (identity === null) return show(form, "wrong", "", true);
    if ((await identityToRecipient(identity)) !== material.data_recipient) {
      return show(form, "mismatch", "", true);
    }
    show(form, "sealing");
    const envelope = await seal(material, identity);
    show(form, "sending");
    await post(form, envelope);
    show(form, "done");
    if (form.dataset.done) setTimeout(() => window.location.assign(form.dataset.done), 1500);
  } finally {
    if (button) button.disabled = false;
  }
}

async function fetchMaterial(form) {
  const r = await fetch(form.dataset.material, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || "HTTP " + r.status);
  if (body.request.id !== form.dataset.request) {
    throw new Error("the controller sent the material of another request");
  }
  return body;
}

// The PD's key file (age, scrypt) opened with the passphrase; null when the
// passphrase is wrong.
async function unwrapIdentity(material, passphrase) {
  const wrapped = Uint8Array.from(atob(material.wrapped_identity), (c) => c.charCodeAt(0));
  const d = new Decrypter();
  d.addPassphrase(passphrase);
  let text;
  try {
    text = await d.decrypt(wrapped, "text");
  } catch (e) {
    return null;
  }
  const line = text.split("\n").map((l) => l.trim()).find((l) => l.startsWith("AGE-SECRET-KEY-"));
  if (!line) throw new Error("the PD's key file holds no identity");
  return line;
}

// The same payload as `cadang restore approve` (proto/src/restore.rs,
// EnvelopePayload), sealed to the agent's recipient and armored.
async function seal(material, identity) {
  const req = material.request;
  const payload = {
    format: FORMAT,
    version: 1,
    request_id: req.id,
    pd: req.pd,
    agent_id: req.agent_id,
    snapshot: req.snapshot,
    what: req.what,
    target: req.target,
    in_place: !!req.in_place,
    expires: req.expires,
    trust_keys: material.controller_key ? [material.controller_key] : [],
    identity,
  };
  const e = new Encrypter();
  e.addRecipient(material.agent_recipient);
  return armor.encode(await e.encrypt(JSON.stringify(payload)));
}

async function post(form, envelope) {
  const r = await fetch(form.dataset.approve, {
    method: "POST",
    credentials: "same-origin",
    headers: {
      "Content-Type": "application/json",
      Accept: "application/json",
      "X-CSRF-Token": form.dataset.csrf,
    },
    body: JSON.stringify({ envelope }),
  });
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    throw new Error(body.error || "HTTP " + r.status);
  }
}
