//! A synthetic shop, deterministic per seed: the data behind `recostore demo`.
//!
//! It is meant to look like a real catalogue to the engine: categories with brands, colours,
//! sizes, materials and price bands; item popularity that follows a Zipf law; users with hidden
//! tastes who buy mostly what they like; and baskets where complementary categories (a phone
//! and its case, a mug and coffee) are bought together. User tags are then *derived* from what
//! each user bought, as a shop's behaviour pipeline would.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::{Item, User};

/// Size and seed of a generated shop.
#[derive(Debug, Clone, Copy)]
pub struct DemoConfig {
    /// Number of items.
    pub items: usize,
    /// Number of users.
    pub users: usize,
    /// Random seed; the same seed gives the same shop.
    pub seed: u64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            items: 50_000,
            users: 10_000,
            seed: 42,
        }
    }
}

/// A generated shop.
#[derive(Debug, Clone)]
pub struct Shop {
    /// The catalogue.
    pub items: Vec<Item>,
    /// Customers, with tags derived from their purchases.
    pub users: Vec<User>,
    /// Baskets as indexes into `items`; `baskets[u]` lists user `u`'s baskets.
    pub baskets: Vec<Vec<Vec<usize>>>,
}

struct Category {
    path: &'static str,
    noun: &'static str,
    brands: &'static [&'static str],
    sized: bool,
    price: (f32, f32),
    complements: &'static [&'static str],
}

const CATEGORIES: &[Category] = &[
    Category {
        path: "apparel/tops",
        noun: "tee",
        brands: &["northwind", "loom", "acme"],
        sized: true,
        price: (8.0, 60.0),
        complements: &["apparel/bottoms", "accessories/belts"],
    },
    Category {
        path: "apparel/bottoms",
        noun: "jeans",
        brands: &["northwind", "loom", "denimco"],
        sized: true,
        price: (20.0, 90.0),
        complements: &["apparel/tops", "footwear/sneakers"],
    },
    Category {
        path: "footwear/sneakers",
        noun: "sneakers",
        brands: &["stride", "acme", "runfast"],
        sized: true,
        price: (30.0, 160.0),
        complements: &["apparel/socks"],
    },
    Category {
        path: "apparel/socks",
        noun: "socks",
        brands: &["loom", "stride"],
        sized: true,
        price: (3.0, 15.0),
        complements: &["footwear/sneakers"],
    },
    Category {
        path: "accessories/belts",
        noun: "belt",
        brands: &["hideaway", "northwind"],
        sized: true,
        price: (10.0, 70.0),
        complements: &["apparel/bottoms"],
    },
    Category {
        path: "electronics/phones",
        noun: "phone",
        brands: &["pear", "galaxia", "nokto"],
        sized: false,
        price: (150.0, 1100.0),
        complements: &["electronics/phone-cases", "electronics/chargers"],
    },
    Category {
        path: "electronics/phone-cases",
        noun: "phone case",
        brands: &["shellit", "pear"],
        sized: false,
        price: (5.0, 45.0),
        complements: &["electronics/phones", "electronics/chargers"],
    },
    Category {
        path: "electronics/chargers",
        noun: "charger",
        brands: &["voltix", "pear", "galaxia"],
        sized: false,
        price: (8.0, 60.0),
        complements: &["electronics/phones"],
    },
    Category {
        path: "kitchen/mugs",
        noun: "mug",
        brands: &["potters", "acme"],
        sized: false,
        price: (4.0, 30.0),
        complements: &["kitchen/coffee"],
    },
    Category {
        path: "kitchen/coffee",
        noun: "coffee beans",
        brands: &["roastery", "beanhouse"],
        sized: false,
        price: (6.0, 35.0),
        complements: &["kitchen/mugs", "kitchen/grinders"],
    },
    Category {
        path: "kitchen/grinders",
        noun: "grinder",
        brands: &["beanhouse", "steelworks"],
        sized: false,
        price: (20.0, 200.0),
        complements: &["kitchen/coffee"],
    },
    Category {
        path: "home/bedding",
        noun: "duvet cover",
        brands: &["sleepwell", "loom"],
        sized: true,
        price: (25.0, 180.0),
        complements: &["home/pillows"],
    },
    Category {
        path: "home/pillows",
        noun: "pillow",
        brands: &["sleepwell", "featherly"],
        sized: false,
        price: (10.0, 80.0),
        complements: &["home/bedding"],
    },
    Category {
        path: "books/fiction",
        noun: "novel",
        brands: &["penwright", "inkhouse"],
        sized: false,
        price: (6.0, 30.0),
        complements: &["books/fiction"],
    },
    Category {
        path: "toys/puzzles",
        noun: "puzzle",
        brands: &["brainy", "funbox"],
        sized: false,
        price: (8.0, 60.0),
        complements: &["toys/board-games"],
    },
    Category {
        path: "toys/board-games",
        noun: "board game",
        brands: &["funbox", "brainy"],
        sized: false,
        price: (15.0, 80.0),
        complements: &["toys/puzzles"],
    },
    Category {
        path: "beauty/skincare",
        noun: "moisturiser",
        brands: &["glowlab", "purely"],
        sized: false,
        price: (8.0, 90.0),
        complements: &["beauty/cleansers"],
    },
    Category {
        path: "beauty/cleansers",
        noun: "cleanser",
        brands: &["glowlab", "purely"],
        sized: false,
        price: (6.0, 40.0),
        complements: &["beauty/skincare"],
    },
    Category {
        path: "garden/tools",
        noun: "trowel",
        brands: &["greenthumb", "steelworks"],
        sized: false,
        price: (8.0, 120.0),
        complements: &["garden/gloves"],
    },
    Category {
        path: "garden/gloves",
        noun: "gloves",
        brands: &["greenthumb", "hideaway"],
        sized: true,
        price: (5.0, 35.0),
        complements: &["garden/tools"],
    },
];

const COLOURS: &[&str] = &[
    "black", "white", "grey", "red", "blue", "green", "yellow", "pink",
];
const MATERIALS: &[&str] = &[
    "cotton", "wool", "leather", "steel", "ceramic", "plastic", "bamboo",
];
const SIZES: &[&str] = &["xs", "s", "m", "l", "xl"];
const RECIPIENTS: &[&str] = &["parent", "partner", "kid", "friend"];

/// A benchmark catalogue: `n` items, each with a tag count drawn from `tags`, tags drawn without
/// repetition from a `vocab`-tag vocabulary with Zipf(1) popularity (tag `r` is picked with
/// probability ∝ 1/r), weights uniform in `0.1..1.0`. Categories `cat/0..200`, random price and
/// stock. Deterministic for a given `seed`.
pub fn zipf_items(
    n: usize,
    vocab: usize,
    tags: std::ops::RangeInclusive<usize>,
    seed: u64,
) -> Vec<Item> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut acc = 0.0;
    let cum: Vec<f64> = (1..=vocab.max(1))
        .map(|k| {
            acc += 1.0 / k as f64;
            acc
        })
        .collect();
    let want_max = (*tags.end()).min(vocab);
    (0..n)
        .map(|i| {
            let want = rng.gen_range(*tags.start()..=*tags.end()).min(want_max);
            let mut picked: Vec<usize> = Vec::with_capacity(want);
            while picked.len() < want {
                let x = rng.gen::<f64>() * acc;
                let t = cum.partition_point(|&v| v < x).min(vocab - 1);
                if !picked.contains(&t) {
                    picked.push(t);
                }
            }
            Item {
                id: format!("sku-{i:07}"),
                tags: picked
                    .into_iter()
                    .map(|t| (format!("tag:{t}"), rng.gen_range(0.1f32..1.0)))
                    .collect(),
                title: format!("item {i}"),
                category: format!("cat/{}", i % 200),
                price: rng.gen_range(1.0..500.0),
                stock: rng.gen_range(0..100),
                ..Item::default()
            }
        })
        .collect()
}

fn title_case(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A hidden taste: what a user tends to buy.
struct Taste {
    categories: Vec<usize>,
    colour: &'static str,
    brand_bias: u64,
    budget: f32,
}

/// Generate a shop. Deterministic: the same config gives the same shop on every platform.
pub fn generate(cfg: DemoConfig) -> Shop {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut items = Vec::with_capacity(cfg.items);
    let mut by_cat: Vec<Vec<usize>> = vec![Vec::new(); CATEGORIES.len()];
    for i in 0..cfg.items {
        // Category sizes are uneven, as in real shops.
        // In [0, len): a float-to-int cast saturates, and the modulo keeps the edge in range.
        #[expect(clippy::cast_possible_truncation, reason = "the value is in [0, len]")]
        let c = (rng.gen::<f64>().powi(2) * CATEGORIES.len() as f64) as usize % CATEGORIES.len();
        let cat = &CATEGORIES[c];
        let brand = cat.brands[rng.gen_range(0..cat.brands.len())];
        let colour = COLOURS[rng.gen_range(0..COLOURS.len())];
        let material = MATERIALS[rng.gen_range(0..MATERIALS.len())];
        let (lo, hi) = cat.price;
        let price = ((lo + (hi - lo) * rng.gen::<f32>().powi(2)) * 100.0).round() / 100.0;
        let mut tags: Vec<(String, f32)> = vec![
            (format!("category:{}", cat.path), 1.0),
            (
                format!("dept:{}", cat.path.split('/').next().unwrap_or(cat.path)),
                0.5,
            ),
            (format!("brand:{brand}"), 0.8),
            (format!("colour:{colour}"), 0.6),
            (format!("material:{material}"), 0.4),
            (crate::model::price_band(price).to_string(), 0.5),
        ];
        if cat.sized {
            tags.push((
                format!("size:{}", SIZES[rng.gen_range(0..SIZES.len())]),
                0.3,
            ));
        }
        if rng.gen_bool(0.15) {
            tags.push((
                format!("for:{}", RECIPIENTS[rng.gen_range(0..RECIPIENTS.len())]),
                0.5,
            ));
        }
        items.push(Item {
            id: format!("sku-{i:06}"),
            title: format!("{} {colour} {material} {}", title_case(brand), cat.noun),
            category: cat.path.to_string(),
            price,
            stock: if rng.gen_bool(0.1) {
                0
            } else {
                rng.gen_range(1..500)
            },
            members_only: rng.gen_bool(0.05),
            created_at: 1_700_000_000 + rng.gen_range(0..30_000_000),
            tags,
        });
        by_cat[c].push(i);
    }
    // Zipf popularity within each category: the k-th item (in a shuffled order) has weight 1/k.
    let cumulative: Vec<Vec<f64>> = by_cat
        .iter()
        .map(|members| {
            let mut acc = 0.0;
            (1..=members.len())
                .map(|k| {
                    acc += 1.0 / k as f64;
                    acc
                })
                .collect()
        })
        .collect();
    let pick = |rng: &mut ChaCha8Rng, c: usize| -> Option<usize> {
        let cum = &cumulative[c];
        let total = *cum.last()?;
        let x = rng.gen::<f64>() * total;
        let k = cum.partition_point(|&v| v < x).min(cum.len() - 1);
        Some(by_cat[c][k])
    };
    let cat_index: HashMap<&str, usize> = CATEGORIES
        .iter()
        .enumerate()
        .map(|(i, c)| (c.path, i))
        .collect();

    let mut users = Vec::with_capacity(cfg.users);
    let mut baskets = Vec::with_capacity(cfg.users);
    for u in 0..cfg.users {
        let taste = Taste {
            categories: (0..rng.gen_range(1..=3))
                .map(|_| rng.gen_range(0..CATEGORIES.len()))
                .collect(),
            colour: COLOURS[rng.gen_range(0..COLOURS.len())],
            brand_bias: rng.gen(),
            budget: [15.0f32, 60.0, 400.0][rng.gen_range(0..3)],
        };
        let mut user_baskets = Vec::new();
        let mut profile: HashMap<String, f32> = HashMap::new();
        for _ in 0..rng.gen_range(1..=6) {
            let mut basket = Vec::new();
            let c = if rng.gen_bool(0.85) {
                taste.categories[rng.gen_range(0..taste.categories.len())]
            } else {
                rng.gen_range(0..CATEGORIES.len())
            };
            // Rejection sampling biases popular items towards the user's colour and budget.
            let mut chosen = None;
            for _ in 0..6 {
                let Some(i) = pick(&mut rng, c) else { break };
                let it = &items[i];
                let likes = it
                    .tags
                    .iter()
                    .any(|(t, _)| t.strip_prefix("colour:") == Some(taste.colour));
                let affordable = it.price <= taste.budget * 1.5;
                let brand_ok = !(crate::narrow::usize_from(taste.brand_bias) + i).is_multiple_of(3);
                let p = 0.15
                    + 0.45 * f64::from(u8::from(likes))
                    + 0.25 * f64::from(u8::from(affordable))
                    + 0.15 * f64::from(u8::from(brand_ok));
                chosen = Some(i);
                if rng.gen_bool(p.min(1.0)) {
                    break;
                }
            }
            let Some(main) = chosen else { continue };
            basket.push(main);
            let comps = CATEGORIES[c].complements;
            if !comps.is_empty() && rng.gen_bool(0.55) {
                let cc = cat_index.get(comps[rng.gen_range(0..comps.len())]).copied();
                if let Some(i) = cc.and_then(|cc| pick(&mut rng, cc)) {
                    if i != main {
                        basket.push(i);
                    }
                }
            }
            for &i in &basket {
                for (t, w) in &items[i].tags {
                    *profile.entry(t.clone()).or_default() += w;
                }
            }
            user_baskets.push(basket);
        }
        let mut tags: Vec<(String, f32)> = profile.into_iter().collect();
        tags.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        tags.truncate(24);
        let max = tags.first().map_or(1.0, |t| t.1);
        for t in &mut tags {
            t.1 /= max;
        }
        if rng.gen_bool(0.2) {
            tags.push(("tier:prime".to_string(), 1.0));
        }
        let recent_items = user_baskets
            .iter()
            .flatten()
            .map(|&i| items[i].id.clone())
            .collect();
        users.push(User {
            id: format!("user-{u:06}"),
            tags,
            recent_items,
        });
        baskets.push(user_baskets);
    }
    Shop {
        items,
        users,
        baskets,
    }
}
