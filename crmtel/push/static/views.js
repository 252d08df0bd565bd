// The main page's views (a tab each in the header, its own <section>). A module registers itself:
//   registerView({id: "callbacks", labelKey: "callbacks.nav", order: 20,
//                 mount(section, me) {...}, show() {...}, onMessage(msg) {...}, onLanguage() {...}})
// and main.js imports it. mount() runs once after login; show() each time its tab is opened;
// onMessage() gets every websocket message; onLanguage() runs after a language switch (texts built
// with el({i18n}) are re-translated automatically).
const views = [];

export function registerView(view) {
  views.push({ order: 50, ...view });
  views.sort((a, b) => a.order - b.order);
}

export const allViews = () => views;
