//! Records that hang off people: groups (`directory_groups`, by the customer's stable
//! id), their members (`group_members`: people by email and subgroups by id, with a
//! manager flag) and contact details (`contact_details`, by Roster's id, per person,
//! owned by the integration or added by hand). A run records the key of its related
//! blob (`runs.related_key`) and what its related changes were (`runs.related_counts`,
//! JSON), and whether its files' encoding check was waived (`runs.ignore_encoding`). A
//! tenant may name its bundle's files (`tenants.bundle_files`, JSON).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DirectoryGroups {
    Table,
    TenantId,
    Id,
    Name,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum GroupMembers {
    Table,
    TenantId,
    GroupId,
    MemberKind,
    Member,
    Manager,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ContactDetails {
    Table,
    TenantId,
    Id,
    Person,
    Protocol,
    Label,
    Uri,
    AddressLabel,
    Address,
    AddressCity,
    AddressState,
    AddressZip,
    AddressCountry,
    Integration,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    BundleFiles,
}

#[derive(DeriveIden)]
enum Runs {
    Table,
    RelatedKey,
    RelatedCounts,
    IgnoreEncoding,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(DirectoryGroups::Table)
                .if_not_exists()
                .col(string(DirectoryGroups::TenantId))
                .col(string(DirectoryGroups::Id))
                .col(text(DirectoryGroups::Name))
                .col(timestamp_with_time_zone(DirectoryGroups::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(DirectoryGroups::TenantId)
                        .col(DirectoryGroups::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(GroupMembers::Table)
                .if_not_exists()
                .col(string(GroupMembers::TenantId))
                .col(string(GroupMembers::GroupId))
                .col(string(GroupMembers::MemberKind))
                .col(string(GroupMembers::Member))
                .col(boolean(GroupMembers::Manager).default(false))
                .col(timestamp_with_time_zone(GroupMembers::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(GroupMembers::TenantId)
                        .col(GroupMembers::GroupId)
                        .col(GroupMembers::MemberKind)
                        .col(GroupMembers::Member),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("group_members_by_member")
                .table(GroupMembers::Table)
                .col(GroupMembers::TenantId)
                .col(GroupMembers::Member)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(ContactDetails::Table)
                .if_not_exists()
                .col(string(ContactDetails::TenantId))
                .col(string(ContactDetails::Id))
                .col(string(ContactDetails::Person))
                .col(text_null(ContactDetails::Protocol))
                .col(text_null(ContactDetails::Label))
                .col(text_null(ContactDetails::Uri))
                .col(text_null(ContactDetails::AddressLabel))
                .col(text_null(ContactDetails::Address))
                .col(text_null(ContactDetails::AddressCity))
                .col(text_null(ContactDetails::AddressState))
                .col(text_null(ContactDetails::AddressZip))
                .col(text_null(ContactDetails::AddressCountry))
                .col(boolean(ContactDetails::Integration))
                .col(timestamp_with_time_zone(ContactDetails::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(ContactDetails::TenantId)
                        .col(ContactDetails::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("contact_details_by_person")
                .table(ContactDetails::Table)
                .col(ContactDetails::TenantId)
                .col(ContactDetails::Person)
                .if_not_exists()
                .to_owned(),
        )
        .await?;
        // One column per statement: SQLite alters no more at once.
        m.alter_table(
            Table::alter()
                .table(Runs::Table)
                .add_column(text_null(Runs::RelatedKey))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Runs::Table)
                .add_column(text_null(Runs::RelatedCounts))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Runs::Table)
                .add_column(boolean(Runs::IgnoreEncoding).default(false))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Tenants::Table)
                .add_column(text_null(Tenants::BundleFiles))
                .to_owned(),
        )
        .await
    }
}
