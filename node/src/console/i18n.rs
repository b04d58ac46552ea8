//! The console's words in Chinese (the default) and English: one table, looked up by key.

/// The language of a page: `?lang=` or the `ecovol_lang` cookie, Chinese by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// `zh` or `en`; anything else is None.
    pub fn parse(text: &str) -> Option<Lang> {
        match text {
            "zh" | "zh-CN" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// The value of `<html lang>`.
    pub fn html_lang(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The text of `key`; the key itself if the table lacks it (a unit test keeps that from happening).
    pub fn t(self, key: &str) -> &'static str {
        match STRINGS.iter().find(|(k, _, _)| *k == key) {
            Some((_, zh, en)) => match self {
                Lang::Zh => zh,
                Lang::En => en,
            },
            None => {
                tracing::warn!(key, "console: no text for this key");
                "?"
            }
        }
    }
}

/// (key, Chinese, English).
pub const STRINGS: &[(&str, &str, &str)] = &[
    ("app.title", "生态环境志愿服务管理台", "Eco volunteer service console"),
    ("skip", "跳到正文", "Skip to content"),
    ("nav.label", "主导航", "Main navigation"),
    ("nav.dashboard", "统计概览", "Dashboard"),
    ("nav.volunteers", "志愿者", "Volunteers"),
    ("nav.teams", "志愿服务队伍", "Teams"),
    ("nav.projects", "项目", "Projects"),
    ("nav.hours", "服务时长", "Service hours"),
    ("nav.trainings", "培训", "Trainings"),
    ("nav.certificates", "服务证明", "Certificates"),
    ("lang.label", "语言", "Language"),
    ("logout", "退出登录", "Log out"),
    ("signed_in_as", "当前用户", "Signed in as"),
    ("login.title", "登录", "Log in"),
    ("login.token", "访问令牌", "Access token"),
    ("login.submit", "登录", "Log in"),
    (
        "login.hint",
        "请输入本部门账号的访问令牌；已绑定客户端证书的账号可直接登录。",
        "Enter your department account's access token; an account bound to a client certificate logs in without one.",
    ),
    ("login.failed", "令牌无效或已被吊销。", "The token is unknown or revoked."),
    ("login.empty", "请输入访问令牌。", "Enter an access token."),
    ("breadcrumbs", "当前位置", "You are here"),
    ("year", "年度", "Year"),
    ("show", "显示", "Show"),
    ("level.province", "省级", "Province"),
    ("level.city", "市级", "City"),
    ("level.county", "县级", "County"),
    ("totals", "合计", "Totals"),
    ("total.confirmed_minutes", "已确认服务时长（分钟）", "Confirmed service (minutes)"),
    ("total.confirmed_hours", "已确认服务时长（小时）", "Confirmed service (hours)"),
    ("total.active_volunteers", "活跃志愿者（人·月）", "Active volunteers (volunteer-months)"),
    ("total.records", "已录用报名（人次）", "Accepted sign-ups"),
    ("total.registered_volunteers", "注册志愿者", "Registered volunteers"),
    ("total.newly_registered", "本年新注册", "Newly registered"),
    ("total.teams", "志愿服务队伍", "Teams"),
    ("total.projects_published", "发布项目", "Projects published"),
    ("total.trainings", "培训场次", "Trainings held"),
    ("total.trainees", "培训人次", "Trainees"),
    ("total.rating", "服务评价均分", "Average rating"),
    ("chart.minutes_by_month", "每月已确认服务时长（分钟）", "Confirmed service minutes by month"),
    ("chart.volunteers_by_month", "每月活跃志愿者", "Active volunteers by month"),
    ("chart.minutes_by_kind", "各类活动已确认服务时长（分钟）", "Confirmed service minutes by activity kind"),
    ("chart.children", "下级地区排名（已确认服务时长，分钟）", "Ranking of sub-regions (confirmed minutes)"),
    ("chart.stars", "星级志愿者分布", "Volunteers by star level"),
    ("chart.trainings", "培训场次与年度要求", "Trainings held against the yearly requirement"),
    ("chart.empty", "暂无数据", "No figures yet"),
    ("chart.table", "以表格查看", "Show as a table"),
    ("download", "下载表格（CSV）", "Download the table (CSV)"),
    ("col.month", "月份", "Month"),
    ("col.kind", "活动类别", "Activity kind"),
    ("col.code", "区划代码", "Division code"),
    ("col.level", "级别", "Level"),
    ("col.minutes", "已确认服务时长（分钟）", "Confirmed minutes"),
    ("col.volunteers", "活跃志愿者", "Active volunteers"),
    ("col.stars", "星级", "Stars"),
    ("col.count", "人数", "Volunteers"),
    ("col.trainings", "培训场次", "Trainings"),
    ("col.required", "年度要求", "Yearly requirement"),
    ("col.freshness", "最近联系", "Last contact"),
    ("col.backlog", "待传条目", "Backlog"),
    ("col.drill", "查看", "Open"),
    ("col.plan", "工作计划", "Work plan"),
    ("col.target", "指标", "Target"),
    ("col.region", "地区", "Region"),
    ("col.target_value", "目标", "Target"),
    ("col.actual", "完成", "Actual"),
    ("col.percent", "完成率", "Done"),
    ("col.status", "状态", "Status"),
    ("children.title", "下级地区", "Sub-regions"),
    ("children.none", "尚无下级地区上报数据。", "No sub-region has sent figures yet."),
    ("own.figures", "本级", "This office"),
    ("stale", "数据可能过期", "stale"),
    ("never", "从未", "never"),
    ("plans.title", "联合工作计划进度", "Joint work plan progress"),
    ("kind.theory_promotion", "理论宣讲", "Theory promotion"),
    ("kind.publicity_education", "宣传教育", "Publicity and education"),
    ("kind.social_supervision", "社会监督", "Social supervision"),
    ("kind.green_low_carbon", "绿色低碳", "Green, low-carbon"),
    ("kind.international_exchange", "国际交流", "International exchange"),
    ("kind.unspecified", "未分类", "Unspecified"),
    ("required.yearly", "每年至少一次培训", "At least one training a year"),
    ("volunteers.title", "志愿者", "Volunteers"),
    ("volunteers.new", "登记志愿者", "Register a volunteer"),
    ("volunteers.none", "尚无志愿者。", "No volunteers yet."),
    ("col.volunteer_number", "志愿者编号", "Volunteer number"),
    ("col.name", "姓名", "Name"),
    ("col.gender", "性别", "Gender"),
    ("col.birth_date", "出生日期", "Birth date"),
    ("col.phone", "手机号码", "Phone"),
    ("col.teams", "所属队伍", "Teams"),
    ("field.name", "姓名", "Name"),
    ("field.id_number", "身份证件号码", "Identity number"),
    ("field.phone", "手机号码", "Mobile phone"),
    ("field.home_division_code", "居住地区划代码", "Home division code"),
    ("field.skills", "技能（以逗号分隔）", "Skills (comma separated)"),
    ("field.consent_to_processing", "本人同意处理个人信息", "Consents to the processing of personal information"),
    ("field.self_supporting", "16–17 周岁且以自己的劳动收入为主要生活来源", "16–17 and living on own income"),
    ("field.political_status", "政治面貌", "Political status"),
    ("political.party_member", "中共党员", "Party member"),
    ("political.league_member", "共青团员", "League member"),
    ("political.masses", "群众", "Masses"),
    ("field.guardian_consent", "监护人同意（未成年人）", "Guardian's consent (minors)"),
    ("guardian.none", "不适用（成年人）", "Not needed (adult)"),
    ("guardian.guardian", "监护人同意", "Given by a guardian"),
    ("guardian.parent", "父母同意", "Given by a parent"),
    ("submit.register", "登记", "Register"),
    ("notice.registered", "志愿者已登记：", "Volunteer registered: "),
    ("teams.title", "志愿服务队伍", "Teams"),
    ("teams.none", "尚无队伍。", "No teams yet."),
    ("col.team_id", "队伍编号", "Team id"),
    ("col.members", "成员数", "Members"),
    ("projects.title", "项目", "Projects"),
    ("projects.new", "发布项目", "Publish a project"),
    ("projects.none", "尚无项目。", "No projects yet."),
    ("col.project_id", "项目编号", "Project id"),
    ("col.title", "名称", "Title"),
    ("col.start", "开始", "Start"),
    ("col.end", "结束", "End"),
    ("col.seats", "名额", "Seats"),
    ("col.taken", "已录用", "Taken"),
    ("col.waitlist", "候补", "Waitlist"),
    ("field.title", "项目名称", "Title"),
    ("field.description", "项目介绍", "Description"),
    ("field.activity_kind", "活动类别", "Activity kind"),
    ("field.organising_team_id", "组织队伍编号", "Organising team id"),
    ("field.site_id", "服务阵地编号（可选）", "Service site id (optional)"),
    ("field.start_at", "开始时间", "Starts at"),
    ("field.end_at", "结束时间", "Ends at"),
    ("field.capacity", "招募名额", "Seats"),
    ("field.min_age", "最低年龄", "Minimum age"),
    ("field.skills_wanted", "所需技能（以逗号分隔）", "Skills wanted (comma separated)"),
    ("field.risky", "有人身风险（未成年人不得参加）", "Physically risky (minors may not join)"),
    ("field.insured", "已投保意外险", "Accident insurance in place"),
    ("field.contact", "联系方式", "Contact"),
    ("submit.publish", "发布", "Publish"),
    ("notice.published", "项目已发布：", "Project published: "),
    ("hours.title", "待确认的服务记录", "Service records to confirm"),
    ("hours.new", "记录服务时长", "Record service hours"),
    ("hours.none", "没有待确认的服务记录。", "No service record waits for confirmation."),
    ("col.record_id", "记录编号", "Record id"),
    ("col.hours", "时长（小时）", "Hours"),
    ("col.content", "服务内容", "Content"),
    ("col.action", "操作", "Action"),
    ("confirm", "确认", "Confirm"),
    ("field.project_id", "项目编号", "Project id"),
    ("field.volunteer_number", "志愿者编号", "Volunteer number"),
    ("field.method", "记录方式", "Recording method"),
    ("method.interval", "按时段记录", "Interval"),
    ("method.check_in_out", "签到签退", "Check-in / check-out"),
    ("field.start_time", "服务开始", "Service started"),
    ("field.end_time", "服务结束", "Service ended"),
    ("field.content", "服务内容", "What was done"),
    ("field.walk_in", "未经报名的现场参与", "Walk-in (no accepted sign-up)"),
    ("submit.record", "记录", "Record"),
    ("notice.recorded", "服务记录已保存：", "Service recorded: "),
    ("notice.confirmed", "服务记录已确认：", "Service record confirmed: "),
    ("trainings.title", "培训", "Trainings"),
    ("trainings.none", "尚无培训。", "No trainings yet."),
    ("col.date", "日期", "Date"),
    ("col.organiser", "组织方", "Organiser"),
    ("col.attendees", "参训人数", "Attendees"),
    ("certificates.title", "志愿服务证明", "Service certificates"),
    (
        "certificates.hint",
        "为志愿者开具一段时间内的服务证明，可直接打印。",
        "Issue a volunteer's certificate of service over a period, ready to print.",
    ),
    ("field.start_date", "起始日期", "From"),
    ("field.end_date", "截止日期", "To"),
    ("submit.issue", "开具", "Issue"),
    ("print", "打印", "Print"),
    ("certificate.number", "证明编号", "Certificate number"),
    ("certificate.total", "累计服务时长（小时）", "Total service (hours)"),
    ("certificate.issuer", "开具单位", "Issued by"),
    ("certificate.issued", "开具日期", "Issued on"),
    ("certificate.period", "服务期间", "Period"),
    ("form.errors", "提交未成功，请修改标出的内容。", "Not saved: correct the marked fields."),
    ("form.required_note", "带 * 的为必填项。", "Fields marked * are required."),
    ("error.403", "无权执行此操作", "Not allowed"),
    ("error.404", "未找到", "Not found"),
    (
        "error.csrf",
        "表单已过期或来源不明，请刷新页面后重试。",
        "The form is stale or did not come from this console: reload the page and try again.",
    ),
    ("error.other", "出错了", "Something went wrong"),
    ("back", "返回首页", "Back to the start"),
    ("yes", "是", "yes"),
    ("no", "否", "no"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key used by the console's sources (`.t("…")`), so none is missing from the table.
    fn keys_used() -> Vec<String> {
        let sources = [
            include_str!("../console.rs"),
            include_str!("page.rs"),
            include_str!("dashboard.rs"),
            include_str!("office.rs"),
            include_str!("chart.rs"),
        ];
        let mut keys = Vec::new();
        for source in sources {
            for piece in source.split(".t(\"").skip(1) {
                if let Some(end) = piece.find('"') {
                    keys.push(piece[..end].to_string());
                }
            }
        }
        keys
    }

    #[test]
    fn every_key_has_both_languages_once() {
        let mut seen = std::collections::BTreeSet::new();
        for (key, zh, en) in STRINGS {
            assert!(seen.insert(*key), "key {key} is in the table twice");
            assert!(!zh.trim().is_empty(), "key {key} has no Chinese text");
            assert!(!en.trim().is_empty(), "key {key} has no English text");
        }
    }

    #[test]
    fn every_key_used_is_in_the_table() {
        let keys = keys_used();
        assert!(keys.len() > 50, "the scan found the keys ({})", keys.len());
        for key in keys {
            if key.ends_with('.') || key.contains('{') {
                continue; // a prefix joined with a value at run time, checked below
            }
            assert!(STRINGS.iter().any(|(k, _, _)| *k == key), "key {key:?} is used but has no text");
        }
        for kind in [
            "theory_promotion",
            "publicity_education",
            "social_supervision",
            "green_low_carbon",
            "international_exchange",
            "unspecified",
        ] {
            assert!(STRINGS.iter().any(|(k, _, _)| *k == format!("kind.{kind}")), "kind {kind}");
        }
        for level in ["province", "city", "county"] {
            assert!(STRINGS.iter().any(|(k, _, _)| *k == format!("level.{level}")), "level {level}");
        }
    }

    #[test]
    fn languages_parse_and_fall_back_to_chinese_nowhere_else() {
        assert_eq!(Lang::parse("en"), Some(Lang::En));
        assert_eq!(Lang::parse("zh"), Some(Lang::Zh));
        assert_eq!(Lang::parse("fr"), None);
        assert_eq!(Lang::En.t("login.submit"), "Log in");
        assert_eq!(Lang::Zh.t("login.submit"), "登录");
    }
}
