//! The page's words in Chinese (the default) and English.

use std::collections::BTreeMap;

use crate::model::DiscrepancyKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn parse(text: &str) -> Lang {
        if text == "en" {
            Lang::En
        } else {
            Lang::Zh
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }
}

/// (key, Chinese, English)
const WORDS: &[(&str, &str, &str)] = &[
    ("app", "人口信息比对核查", "vitalhub review"),
    ("login", "登录", "Log in"),
    ("logout", "退出", "Log out"),
    ("user", "用户名", "User name"),
    ("password", "密码", "Password"),
    (
        "login_failed",
        "用户名或密码错误",
        "Wrong user name or password",
    ),
    (
        "login_limited",
        "尝试次数过多，请稍后再试",
        "Too many attempts; try again later",
    ),
    ("dashboard", "概览", "Dashboard"),
    ("discrepancies", "差异清单", "Discrepancies"),
    ("quarantine", "隔离记录", "Quarantine"),
    ("period", "期间", "Period"),
    ("kind", "类型", "Kind"),
    ("division", "区县", "District"),
    ("status", "状态", "Status"),
    ("severity", "严重程度", "Severity"),
    ("assignee", "经办人", "Assignee"),
    ("unassigned", "未分配", "Unassigned"),
    ("search", "姓名或证件号", "Name or key"),
    ("filter", "筛选", "Filter"),
    ("all", "全部", "All"),
    ("unresolved", "待处理", "Unresolved"),
    ("open", "待处理", "Open"),
    ("possible_match", "疑似匹配", "Possible match"),
    ("confirmed", "已确认", "Confirmed"),
    ("resolved", "已解决", "Resolved"),
    ("dismissed", "已驳回", "Dismissed"),
    ("gone", "已消失", "Gone"),
    ("high", "高", "High"),
    ("medium", "中", "Medium"),
    ("low", "低", "Low"),
    ("score", "分值", "Score"),
    ("first_seen", "首次发现", "First seen"),
    ("count", "数量", "Count"),
    ("total", "共", "Total"),
    ("page", "页", "Page"),
    ("prev", "上一页", "Previous"),
    ("next", "下一页", "Next"),
    ("export_xlsx", "导出 Excel", "Export xlsx"),
    ("export_csv", "导出 CSV", "Export CSV"),
    ("by_kind", "按类型", "By kind"),
    ("by_division", "按区县", "By district"),
    ("trend", "近期趋势", "Trend"),
    ("oldest", "最早的待处理事项", "Oldest open items"),
    ("explanation", "说明", "Explanation"),
    ("field", "字段", "Field"),
    ("registry", "人口库", "Registry"),
    ("source", "来源", "Source"),
    ("sources", "来源记录", "Source records"),
    ("registry_record", "人口库记录", "Registry record"),
    ("differs", "不一致的字段", "Fields that differ"),
    ("evidence", "匹配依据", "Linkage evidence"),
    (
        "no_evidence",
        "此类差异无概率匹配依据",
        "No probabilistic linkage behind this kind",
    ),
    ("history", "处理记录", "History"),
    ("actions", "处理", "Actions"),
    ("assign", "分配", "Assign"),
    ("confirm", "确认", "Confirm"),
    ("resolve", "解决", "Resolve"),
    ("dismiss", "驳回", "Dismiss"),
    ("reopen", "重新打开", "Reopen"),
    ("note", "处理说明", "Note"),
    ("reason", "驳回理由", "Reason"),
    (
        "bulk",
        "对筛选结果批量处理",
        "Act on the whole filtered list",
    ),
    ("apply", "执行", "Apply"),
    ("viewer_only", "只读账户，不能处理", "Read-only account"),
    ("not_found", "记录不存在", "Not found"),
    ("file", "文件", "File"),
    ("location", "位置", "Place"),
    ("reason_q", "原因", "Reason"),
    ("created", "时间", "Time"),
    (
        "quarantine_scope",
        "隔离记录仅对全市范围账户开放",
        "The quarantine is open to region-wide accounts only",
    ),
    ("none", "无", "None"),
    ("weight", "权重", "Weight"),
    ("level", "比较级别", "Level"),
    ("match_probability", "匹配概率", "Match probability"),
    ("at", "时间", "When"),
    ("by", "操作人", "By"),
    ("change", "变更", "Change"),
    ("sort", "排序", "Sort"),
    ("users", "用户管理", "Operators"),
    ("role", "角色", "Role"),
    ("scope", "范围", "Scope"),
    ("state", "状态", "State"),
    ("active", "启用", "Active"),
    ("disabled", "已停用", "Disabled"),
    ("disable", "停用", "Disable"),
    ("enable", "启用", "Enable"),
    ("add_user", "新增用户", "Add operator"),
    ("whole_region", "全市", "Whole region"),
    ("viewer", "查看", "Viewer"),
    ("reviewer", "核查", "Reviewer"),
    ("admin", "管理员", "Admin"),
];

/// Every word of the page in one language, for the templates; kind names under `kind.NAME`.
pub fn words(lang: Lang) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = WORDS
        .iter()
        .map(|(k, zh, en)| {
            let text = if lang == Lang::Zh { zh } else { en };
            ((*k).to_owned(), (*text).to_owned())
        })
        .collect();
    for kind in DiscrepancyKind::ALL {
        let text = match lang {
            Lang::Zh => kind.label_zh().to_owned(),
            Lang::En => kind.name().replace('_', " "),
        };
        map.insert(format!("kind.{}", kind.name()), text);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_languages_have_every_word() {
        let (zh, en) = (words(Lang::Zh), words(Lang::En));
        assert_eq!(zh.len(), en.len());
        assert_eq!(zh["resolve"], "解决");
        assert_eq!(en["kind.unreported_birth"], "unreported birth");
        let keys: std::collections::HashSet<_> = WORDS.iter().map(|w| w.0).collect();
        assert_eq!(keys.len(), WORDS.len(), "no key twice");
    }
}
