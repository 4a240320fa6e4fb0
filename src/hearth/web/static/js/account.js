// Your account: set or change your own password; download or erase your data.
import { api } from "./api.js";
import { toast } from "./dom.js";

const $ = (id) => document.getElementById(id);

$("password-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = { password: $("new-password").value };
  if ($("current")) body.current = $("current").value;
  try {
    await api("/api/me/password", { method: "PUT", json: body });
    toast("Password saved");
    e.target.reset();
  } catch (err) {
    toast(err.message, "error");
  }
});

$("erase-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await api("/api/me", { method: "DELETE", json: { confirm: $("erase-confirm").value } });
    location.assign("/login");
  } catch (err) {
    toast(err.message, "error");
  }
});
