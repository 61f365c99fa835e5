// Words of the page in English and French, and the relative times ("45 s ago", "Il y a 45 s").

const STRINGS = {
  en: {
    title: "Kiosk status",
    addKiosk: "Add a kiosk",
    kioskName: "Name",
    create: "Create",
    enrollmentTitle: "Enrollment code for {name}",
    enrollmentHelp:
      "Type it or scan the QR code on the tablet; single use, valid until {until}. It is shown only now.",
    rotateKey: "New enrollment code (revokes the key)",
    rotateConfirm: "The tablet's current key stops working at once; it must enroll again with the new code. Continue?",
    adminOnly: "Managing kiosks needs an admin token; this one can only read.",
    signInTitle: "Sign in",
    signInHelp: "Paste a back-office token (kiosk-exporter token add).",
    tokenLabel: "Back-office token",
    remember: "Remember on this device",
    signIn: "Sign in",
    signOut: "Sign out",
    tokenRefused: "This token was refused. Sign in with a valid back-office token.",
    checking: "Checking…",
    signInFailed: "Could not reach the service ({reason}). Try again.",
    summary: "{n}/{m} online ({p})",
    countOffline: "offline",
    countNever: "never connected",
    countInactive: "deactivated",
    countCalm: "outside hours / maintenance",
    viewList: "List",
    viewCards: "Cards",
    view: "View",
    location: "Location",
    allLocations: "All locations",
    status: "Status",
    allStatuses: "All statuses",
    search: "Search by name",
    refreshNow: "Refresh now",
    updated: "Updated {ago}",
    refreshFailed: "Last refresh failed {ago} ({reason}). The data below is from {data}, not current.",
    loading: "Loading…",
    loadFailed: "Loading the fleet failed {ago} ({reason}); the page tries again every 15 s.",
    noMatch: "No kiosk matches these filters.",
    showing: "{from}–{to} of {total}",
    previous: "Previous",
    next: "Next",
    lastPing: "Last ping: {ago}",
    neverPinged: "No heartbeat yet",
    offlineFor: "Offline for {duration}",
    battery: "Battery {p}",
    charging: "(charging)",
    appNotOnScreen: "App not on screen",
    alert: "Alert",
    back: "All kiosks",
    notFound: "No kiosk with this id.",
    details: "Details",
    kioskId: "Kiosk id",
    version: "App version",
    device: "Device",
    lastHeartbeat: "Last heartbeat",
    maintenanceUntil: "Maintenance until",
    history: "History",
    historyMissing: "This service keeps no outage history: the status above is all there is.",
    availability: "Availability",
    last24h: "24 h",
    last7d: "7 days",
    last30d: "30 days",
    strip: "Availability per day, last 30 days",
    noData: "no data",
    outages: "Last outages",
    noOutages: "No outage in the last 30 days.",
    started: "Started",
    ended: "Ended",
    duration: "Duration",
    ongoing: "ongoing",
    unknown: "unknown",
    state: {
      online: "Online",
      offline: "Offline",
      never_connected: "Never connected",
      inactive: "Deactivated",
      outside_hours: "Outside hours",
      maintenance: "Maintenance",
    },
    ago: (value) => `${value} ago`,
    units: { s: "s", min: "min", h: "h", d: "d" },
    long: {
      s: ["second", "seconds"],
      min: ["minute", "minutes"],
      h: ["hour", "hours"],
      d: ["day", "days"],
    },
  },
  fr: {
    addKiosk: "Ajouter une borne",
    kioskName: "Nom",
    create: "Créer",
    enrollmentTitle: "Code d’enrôlement de {name}",
    enrollmentHelp:
      "Saisissez-le ou scannez le QR code sur la tablette ; usage unique, valable jusqu’au {until}. Il n’est affiché qu’une fois.",
    rotateKey: "Nouveau code d’enrôlement (révoque la clé)",
    rotateConfirm: "La clé actuelle de la tablette cesse aussitôt de fonctionner ; elle devra s’enrôler avec le nouveau code. Continuer ?",
    adminOnly: "Gérer les bornes demande un jeton admin ; celui-ci ne peut que lire.",
    title: "État des bornes",
    signInTitle: "Connexion",
    signInHelp: "Collez un jeton back-office (kiosk-exporter token add).",
    tokenLabel: "Jeton back-office",
    remember: "Se souvenir sur cet appareil",
    signIn: "Se connecter",
    signOut: "Se déconnecter",
    tokenRefused: "Ce jeton a été refusé. Connectez-vous avec un jeton back-office valide.",
    checking: "Vérification…",
    signInFailed: "Le service ne répond pas ({reason}). Réessayez.",
    summary: "{n}/{m} en ligne ({p})",
    countOffline: "hors ligne",
    countNever: "jamais connectés",
    countInactive: "désactivés",
    countCalm: "hors horaires / maintenance",
    viewList: "Liste",
    viewCards: "Cartes",
    view: "Vue",
    location: "Emplacement",
    allLocations: "Tous les emplacements",
    status: "État",
    allStatuses: "Tous les états",
    search: "Rechercher par nom",
    refreshNow: "Actualiser",
    updated: "Mis à jour {ago}",
    refreshFailed:
      "La dernière actualisation a échoué {ago} ({reason}). Les données ci-dessous datent de {data}, elles ne sont pas à jour.",
    loading: "Chargement…",
    loadFailed: "Le chargement a échoué {ago} ({reason}) ; la page réessaie toutes les 15 s.",
    noMatch: "Aucune borne ne correspond à ces filtres.",
    showing: "{from}–{to} sur {total}",
    previous: "Précédent",
    next: "Suivant",
    lastPing: "Dernier ping : {ago}",
    neverPinged: "Aucun heartbeat reçu",
    offlineFor: "Hors ligne depuis {duration}",
    battery: "Batterie {p}",
    charging: "(en charge)",
    appNotOnScreen: "Application pas à l’écran",
    alert: "Alerte",
    back: "Toutes les bornes",
    notFound: "Aucune borne avec cet identifiant.",
    details: "Détails",
    kioskId: "Identifiant",
    version: "Version de l'app",
    device: "Appareil",
    lastHeartbeat: "Dernier heartbeat",
    maintenanceUntil: "Maintenance jusqu'à",
    history: "Historique",
    historyMissing: "Ce service ne garde pas d'historique des pannes : l'état ci-dessus est tout ce qu'il connaît.",
    availability: "Disponibilité",
    last24h: "24 h",
    last7d: "7 jours",
    last30d: "30 jours",
    strip: "Disponibilité par jour, 30 derniers jours",
    noData: "pas de données",
    outages: "Dernières pannes",
    noOutages: "Aucune panne ces 30 derniers jours.",
    started: "Début",
    ended: "Fin",
    duration: "Durée",
    ongoing: "en cours",
    unknown: "inconnu",
    state: {
      online: "En ligne",
      offline: "Hors ligne",
      never_connected: "Jamais connecté",
      inactive: "Désactivé",
      outside_hours: "Hors horaires",
      maintenance: "Maintenance",
    },
    ago: (value) => `Il y a ${value}`,
    units: { s: "s", min: "min", h: "h", d: "j" },
    long: {
      s: ["seconde", "secondes"],
      min: ["minute", "minutes"],
      h: ["heure", "heures"],
      d: ["jour", "jours"],
    },
  },
};

export const LANGUAGES = Object.keys(STRINGS);

/** ?lang=fr wins, then the browser's preferred languages; English otherwise. */
export function pickLanguage(search, preferred) {
  const asked = new URLSearchParams(search).get("lang");
  if (asked && STRINGS[asked]) return asked;
  for (const tag of preferred || []) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (STRINGS[base]) return base;
  }
  return "en";
}

export function makeTranslator(lang) {
  const words = STRINGS[lang] || STRINGS.en;
  const numbers = new Intl.NumberFormat(lang);
  const percents = new Intl.NumberFormat(lang, { maximumFractionDigits: 2 });
  const fill = (template, values) =>
    template.replace(/\{(\w+)\}/g, (_, key) => String(values[key] ?? ""));

  /** The largest whole unit: 45 s, 15 min, 3 h, 2 d. */
  function split(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return [s, "s"];
    if (s < 3600) return [Math.floor(s / 60), "min"];
    if (s < 86400) return [Math.floor(s / 3600), "h"];
    return [Math.floor(s / 86400), "d"];
  }

  return {
    lang,
    t: (key, values = {}) => fill(words[key] ?? key, values),
    state: (name) => words.state[name] ?? name,
    number: (value) => numbers.format(value),
    /** "75 %" in both languages, as the issue spells it. */
    percent: (ratio) => `${percents.format(ratio * 100)} %`,
    short(seconds) {
      const [value, unit] = split(seconds);
      return `${value} ${words.units[unit]}`;
    },
    ago(seconds) {
      return words.ago(this.short(seconds));
    },
    long(seconds) {
      const [value, unit] = split(seconds);
      return `${value} ${words.long[unit][value === 1 ? 0 : 1]}`;
    },
    dateTime(ms) {
      return new Date(ms).toLocaleString(lang, { dateStyle: "medium", timeStyle: "medium" });
    },
    date(ms) {
      return new Date(ms).toLocaleDateString(lang, { dateStyle: "medium", timeZone: "UTC" });
    },
  };
}
