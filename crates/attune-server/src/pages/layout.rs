//! The shared page shells (console, sign-in, storefront, error), icons and product imagery. Every page
//! uses one stylesheet, `assets/attune.css`, whose design tokens the console and storefront share.

use super::format::{display_title, hue, initials, short_name};
use crate::api::tasks::status_name;
use attune_core::Item;
use attune_engine::tasks::{TaskRecord, TaskTrigger};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use std::sync::LazyLock;

pub const STYLESHEET: &str = include_str!("../../assets/attune.css");
pub const FAVICON: &str = include_str!("../../assets/favicon.svg");

/// A short content hash appended to asset URLs, so browsers may cache them for long.
pub static ASSET_VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{:08x}",
        STYLESHEET
            .bytes()
            .chain(FAVICON.bytes())
            .fold(0x811c_9dc5_u32, |h, b| { (h ^ u32::from(b)).wrapping_mul(0x0100_0193) })
    )
});

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light";
            title { (title) }
            link rel="icon" type="image/svg+xml" href=(format!("/assets/favicon.svg?v={}", *ASSET_VERSION));
            link rel="stylesheet" href=(format!("/assets/attune.css?v={}", *ASSET_VERSION));
        }
    }
}

/// Small stroke icons (24×24 grid) used in navigation and buttons.
pub fn icon(name: &str) -> Markup {
    let body = match name {
        "overview" => {
            r#"<rect x="3" y="3" width="7" height="9" rx="1.5"/><rect x="14" y="3" width="7" height="5" rx="1.5"/><rect x="14" y="12" width="7" height="9" rx="1.5"/><rect x="3" y="16" width="7" height="5" rx="1.5"/>"#
        }
        "catalog" => r#"<path d="M21 8l-9-5-9 5 9 5 9-5z"/><path d="M3 8v8l9 5 9-5V8"/><path d="M12 13v8"/>"#,
        "customers" => {
            r#"<circle cx="9" cy="8" r="3.5"/><path d="M2.5 20c.8-3.6 3.4-5.5 6.5-5.5s5.7 1.9 6.5 5.5"/><path d="M16 4.8a3.5 3.5 0 010 6.4M18.5 14.8c1.6.8 2.6 2.5 3 5.2"/>"#
        }
        "insights" => r#"<path d="M4 20V10M10 20V4M16 20v-7M22 20H2"/>"#,
        "models" => r#"<path d="M12 3l8 4.5-8 4.5-8-4.5L12 3z"/><path d="M4 12l8 4.5 8-4.5M4 16.5L12 21l8-4.5"/>"#,
        "store" => r#"<path d="M5 8h14l-1 12H6L5 8z"/><path d="M9 8V6.5a3 3 0 016 0V8"/>"#,
        "api" => r#"<path d="M8 7l-5 5 5 5M16 7l5 5-5 5M13.5 4l-3 16"/>"#,
        "logout" => r#"<path d="M15 4h3a2 2 0 012 2v12a2 2 0 01-2 2h-3"/><path d="M10 16l-4-4 4-4M6 12h10"/>"#,
        "search" => r#"<circle cx="11" cy="11" r="6.5"/><path d="M20 20l-4.2-4.2"/>"#,
        "arrow-right" => r#"<path d="M5 12h14M13 6l6 6-6 6"/>"#,
        "arrow-left" => r#"<path d="M19 12H5M11 6l-6 6 6 6"/>"#,
        "external" => r#"<path d="M14 4h6v6M20 4l-9 9M18 14v5a1 1 0 01-1 1H5a1 1 0 01-1-1V7a1 1 0 011-1h5"/>"#,
        "check" => r#"<path d="M5 12.5l4.5 4.5L19 7.5"/>"#,
        "x" => r#"<path d="M6 6l12 12M18 6L6 18"/>"#,
        "key" => r#"<circle cx="8" cy="15" r="4"/><path d="M11 12l9-9M16 7l3 3M14 9l2 2"/>"#,
        "download" => r#"<path d="M12 4v11M7 10l5 5 5-5M5 20h14"/>"#,
        "trash" => r#"<path d="M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3"/>"#,
        _ => "",
    };
    html! {
        svg.icon viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round"
            stroke-linejoin="round" aria-hidden="true" { (PreEscaped(body)) }
    }
}

fn logo_mark() -> Markup {
    html! {
        svg.logo-mark viewBox="0 0 32 32" aria-hidden="true" {
            defs {
                linearGradient id="logo-gradient" x1="0" y1="0" x2="1" y2="1" {
                    stop offset="0" stop-color="#6366f1" {}
                    stop offset="1" stop-color="#0ea5e9" {}
                }
            }
            rect width="32" height="32" rx="8" fill="url(#logo-gradient)" {}
            path d="M6 19c2.5 0 2.5-8 5-8s2.5 10 5 10 2.5-12 5-12 2.5 10 5 10" fill="none" stroke="#fff"
                stroke-width="2.4" stroke-linecap="round" stroke-linejoin="round" {}
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleSection {
    Overview,
    Catalog,
    Customers,
    Insights,
    Models,
}

/// What the console shell shows around every page.
pub struct ConsoleShell<'a> {
    pub tenant_id: &'a str,
    pub tenant_name: &'a str,
    /// Whether this tenant is the one the storefront demo shows.
    pub has_storefront: bool,
    pub section: ConsoleSection,
    /// The session's form token, carried by the sign-out form.
    pub form_token: &'a str,
}

/// A console page: sidebar navigation, a top bar with the tenant and sign-out, and the content.
/// A number that differs on every console page rendered by this process: the `data-render` attribute of
/// `<body>`, so a browser (and a test driving one) can tell that a new page has replaced the old one.
fn render_number() -> u64 {
    static RENDERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    RENDERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
}

pub fn console_page(shell: &ConsoleShell, title: &str, content: Markup) -> Markup {
    let nav = [
        (ConsoleSection::Overview, "/console", "Overview", "overview"),
        (ConsoleSection::Catalog, "/console/catalog", "Catalog", "catalog"),
        (ConsoleSection::Customers, "/console/customers", "Customers", "customers"),
        (ConsoleSection::Insights, "/console/insights", "Insights", "insights"),
        (ConsoleSection::Models, "/console/models", "Models", "models"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(&format!("{title} · Attune console")))
            body.console data-render=(render_number()) {
                div.console-layout {
                    aside.sidebar {
                        a.brand href="/console" { (logo_mark()) span.brand-name { "Attune" } span.brand-tag { "Console" } }
                        nav.side-nav aria-label="Console" {
                            @for (section, href, label, icon_name) in nav {
                                a.nav-link.active[section == shell.section] href=(href)
                                    aria-current=[(section == shell.section).then_some("page")] {
                                    (icon(icon_name)) span { (label) }
                                }
                            }
                            div.nav-heading { "Resources" }
                            @if shell.has_storefront {
                                a.nav-link href="/shop" target="_blank" rel="noopener" {
                                    (icon("store")) span { "Storefront demo" } span.nav-external { (icon("external")) }
                                }
                            }
                            a.nav-link href="/v1/openapi.json" target="_blank" rel="noopener" {
                                (icon("api")) span { "API reference" } span.nav-external { (icon("external")) }
                            }
                        }
                        div.sidebar-footer {
                            div.tenant-chip title=(format!("Tenant id: {}", shell.tenant_id)) {
                                span.tenant-avatar style=(format!("--hue:{}", hue(shell.tenant_id))) {
                                    (initials(shell.tenant_name))
                                }
                                span.tenant-text {
                                    span.tenant-name { (shell.tenant_name) }
                                    span.tenant-id { (shell.tenant_id) }
                                }
                            }
                            a.nav-link href="/console/sessions" { (icon("key")) span { "Sessions" } }
                            form method="post" action="/console/logout" {
                                input type="hidden" name="form_token" value=(shell.form_token);
                                button.nav-link.signout type="submit" { (icon("logout")) span { "Sign out" } }
                            }
                        }
                    }
                    main.console-main id="main" { (content) }
                }
            }
        }
    }
}

/// The heading block of a console page: optional breadcrumb, title, subtitle and actions.
pub fn page_header(crumbs: &[(&str, &str)], title: &str, subtitle: Option<Markup>, actions: Option<Markup>) -> Markup {
    html! {
        header.page-header {
            div.page-heading {
                @if !crumbs.is_empty() {
                    nav.breadcrumb aria-label="Breadcrumb" {
                        @for (href, label) in crumbs { a href=(href) { (label) } span.crumb-sep { "/" } }
                    }
                }
                h1 { (title) }
                @if let Some(subtitle) = subtitle { p.page-subtitle { (subtitle) } }
            }
            @if let Some(actions) = actions { div.page-actions { (actions) } }
        }
    }
}

/// A centred card page without navigation (sign-in).
pub fn auth_page(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(&format!("{title} · Attune")))
            body.auth {
                main.auth-main {
                    a.brand.brand-large href="/console" { (logo_mark()) span.brand-name { "Attune" } }
                    (content)
                    p.auth-footnote { "Self-hosted personalization for retailers" }
                }
            }
        }
    }
}

/// What the storefront shell shows around every page.
pub struct ShopShell<'a> {
    pub shop_name: &'a str,
    /// Units in the visitor's basket.
    pub basket_units: u64,
    /// The search box's current text.
    pub query: &'a str,
    /// Past queries offered by the search box (a `<datalist>`).
    pub suggestions: &'a [String],
}

pub fn shop_page(shell: &ShopShell, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(&format!("{title} · {}", short_name(shell.shop_name))))
            body.shop {
                div.demo-ribbon {
                    "Demo storefront — every view and basket change is recorded as an event in Attune. "
                    a href="/console" { "Open the console" }
                }
                header.shop-header {
                    div.shop-header-inner {
                        a.shop-brand href="/shop" title=(shell.shop_name) {
                            span.shop-logo { (icon("store")) } span { (short_name(shell.shop_name)) }
                        }
                        form.shop-search method="get" action="/shop/search" role="search" {
                            (icon("search"))
                            input type="search" name="q" value=(shell.query) placeholder="Search products"
                                aria-label="Search products" list="search-suggestions" autocomplete="off";
                            datalist id="search-suggestions" {
                                @for suggestion in shell.suggestions { option value=(suggestion) {} }
                            }
                        }
                        nav.shop-nav {
                            a href="/shop/browse" { "All products" }
                            a.basket-link href="/shop/cart" {
                                (icon("store"))
                                span { "Basket" }
                                span.basket-count.empty[shell.basket_units == 0] id="basket-count" { (shell.basket_units) }
                            }
                        }
                    }
                }
                main.shop-main { (content) }
                footer.shop-footer {
                    div.shop-footer-inner {
                        span { (shell.shop_name) }
                        a.muted id="privacy-link" href="/shop/privacy" { "Your privacy" }
                        span.muted { "A demo storefront powered by Attune · data: UCI Online Retail" }
                    }
                }
            }
        }
    }
}

/// A standalone error page for failures outside a shell.
pub fn error_page(status: u16, heading: &str, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(&format!("{heading} · Attune")))
            body.auth {
                main.auth-main {
                    a.brand.brand-large href="/console" { (logo_mark()) span.brand-name { "Attune" } }
                    div.card.auth-card {
                        p.error-code { (status) }
                        h1 { (heading) }
                        p.muted { (message) }
                        div.button-row {
                            a.button.primary href="/console" { "Go to the console" }
                            a.button href="/shop" { "Visit the storefront" }
                        }
                    }
                }
            }
        }
    }
}

/// A generated tile for items without an image: the title's initials on a colour derived from the id.
pub fn placeholder(id: &str, title: &str) -> Markup {
    let h = hue(id);
    html! {
        svg.placeholder viewBox="0 0 100 100" preserveAspectRatio="xMidYMid slice" role="img"
            aria-label=(display_title(title)) {
            rect width="100" height="100" fill=(format!("hsl({h} 48% 90%)")) {}
            circle cx="86" cy="14" r="34" fill=(format!("hsl({h} 52% 84%)")) {}
            circle cx="6" cy="100" r="26" fill=(format!("hsl({} 50% 86%)", (h + 24) % 360)) {}
            text x="50" y="52" text-anchor="middle" dominant-baseline="middle" font-size="24" font-weight="600"
                letter-spacing="1.5" fill=(format!("hsl({h} 38% 32%)")) { (initials(title)) }
        }
    }
}

/// The item's image, or its placeholder tile.
pub fn product_image(item: &Item) -> Markup {
    match &item.image_url {
        Some(url) => html! { img src=(url) alt=(display_title(&item.title)) loading="lazy"; },
        None => placeholder(item.id.as_str(), &item.title),
    }
}

/// A table of background task runs, newest first; `empty` says why there are none.
pub fn tasks_table(id: &str, tasks: &[TaskRecord], empty: &str) -> Markup {
    html! {
        @if tasks.is_empty() {
            p.muted { (empty) }
        } @else {
            table.data-table id=(id) {
                thead { tr { th { "Started" } th { "Trigger" } th { "Status" } th { "Progress" } th { "Result" } } }
                tbody {
                    @for task in tasks {
                        tr {
                            td { (task.started_at.to_string()) }
                            td { (match task.trigger { TaskTrigger::Request => "on demand", TaskTrigger::Schedule => "scheduled" }) }
                            td { (status_name(task.status)) }
                            td { (format!("{:.0} % ({})", task.progress * 100.0, task.stage)) }
                            td { (task.summary.as_deref().or(task.error.as_deref()).unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}
