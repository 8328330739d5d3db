//! Chinese names for simulated people, and homophone typos made with the pinyin tables.

use std::collections::BTreeMap;

use pinyin::ToPinyin;
use rand::seq::IndexedRandom;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// Common surnames, including those whose surname reading differs from the common one.
pub const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林",
    "何", "郭", "马", "罗", "梁", "宋", "郑", "谢", "韩", "唐", "冯", "于", "董", "萧", "程", "曹",
    "袁", "邓", "许", "傅", "沈", "曾", "彭", "吕", "苏", "卢", "蒋", "蔡", "贾", "丁", "魏", "薛",
    "叶", "阎", "余", "潘", "杜", "戴", "夏", "钟", "汪", "田", "任", "姜", "范", "方", "石", "姚",
    "谭", "廖", "邹", "熊", "金", "陆", "郝", "孔", "白", "崔", "康", "毛", "邱", "秦", "江", "史",
    "顾", "侯", "邵", "孟", "龙", "万", "段", "单", "仇", "区", "解",
];

/// Given-name characters, chosen so that most have a homophone in the same list.
const GIVEN: &str = "梓子紫涵寒含轩宣萱浩皓昊宇雨语羽欣新心馨怡宜依一婷庭亭俊骏峻杰洁婕静婧晶靖丽莉立力明铭鸣嘉佳家晨辰琛思斯丝博波柏航杭泽则睿瑞锐诺娜伟玮薇文雯闻华桦强蔷敏珉军君芳方秀修英瑛平萍兰岚";

pub struct Names {
    given: Vec<char>,
    homophones: BTreeMap<char, Vec<char>>,
}

impl Names {
    pub fn new() -> Names {
        let given: Vec<char> = GIVEN.chars().collect();
        let mut by_sound: BTreeMap<&'static str, Vec<char>> = BTreeMap::new();
        for &c in &given {
            if let Some(p) = c.to_pinyin() {
                by_sound.entry(p.plain()).or_default().push(c);
            }
        }
        let mut homophones = BTreeMap::new();
        for group in by_sound.values().filter(|g| g.len() > 1) {
            for &c in group {
                homophones.insert(c, group.iter().copied().filter(|&o| o != c).collect());
            }
        }
        Names { given, homophones }
    }

    pub fn full_name(&self, rng: &mut ChaCha8Rng, surname: &str) -> String {
        let len = if rng.random_bool(0.7) { 2 } else { 1 };
        let mut name = surname.to_owned();
        for _ in 0..len {
            name.push(*self.given.choose(rng).expect("non-empty"));
        }
        name
    }

    /// The same name with one given-name character replaced by a homophone, if it has one.
    pub fn homophone_typo(&self, rng: &mut ChaCha8Rng, name: &str) -> Option<String> {
        let chars: Vec<char> = name.chars().collect();
        let positions: Vec<usize> = (1..chars.len())
            .filter(|&i| self.homophones.contains_key(&chars[i]))
            .collect();
        let &pos = positions.choose(rng)?;
        let alt = *self.homophones[&chars[pos]].choose(rng)?;
        let mut out = chars;
        out[pos] = alt;
        Some(out.into_iter().collect())
    }

    /// A different name: the same surname with another given-name character.
    pub fn other_name(&self, rng: &mut ChaCha8Rng, name: &str) -> String {
        let mut chars: Vec<char> = name.chars().collect();
        let last = chars.len() - 1;
        loop {
            let c = *self.given.choose(rng).expect("non-empty");
            if c != chars[last]
                && self
                    .homophones
                    .get(&chars[last])
                    .is_none_or(|h| !h.contains(&c))
            {
                chars[last] = c;
                return chars.into_iter().collect();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn homophone_typos_sound_the_same_and_differ() {
        let names = Names::new();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let typo = names.homophone_typo(&mut rng, "王梓涵").unwrap();
        assert_ne!(typo, "王梓涵");
        let sound = |s: &str| {
            s.chars()
                .map(|c| c.to_pinyin().map(|p| p.plain()).unwrap_or("?"))
                .collect::<Vec<_>>()
        };
        assert_eq!(sound(&typo), sound("王梓涵"));
    }
}
