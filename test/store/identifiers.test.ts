import { describe, expect, it } from 'vitest'
import { hasResidentIdShape, identifierByName, identifierInValue, isResidentIdNumber } from '../../src/store/identifiers.ts'

// Synthetic resident identity numbers: region 110101 (Beijing, Dongcheng), 440306, 320102; the first
// of each pair has its valid check character, the second a wrong one.
const VALID_18 = ['110101199003071233', '440306198512240028', '320102200002294567']
const WRONG_CHECK_18 = ['110101199003071234', '44030619851224002X', '320102200002294560']
const OLD_15 = ['110101900307123', '440306851224002']

describe('resident identity numbers', () => {
  it('knows a valid check character from a wrong one, and flags both', () => {
    for (const id of VALID_18) expect(isResidentIdNumber(id)).toBe(true)
    for (const id of WRONG_CHECK_18) expect(isResidentIdNumber(id)).toBe(false)
    for (const id of [...VALID_18, ...WRONG_CHECK_18, ...OLD_15]) {
      expect(hasResidentIdShape(id)).toBe(true)
      expect(identifierInValue(id)).toBe('RESIDENT_ID')
    }
  })

  it('finds them in every common spacing, in lower case and full-width digits', () => {
    const spaced = (id: string, groups: number[], separator: string): string => {
      const parts: string[] = []
      let at = 0
      for (const size of groups) {
        parts.push(id.slice(at, at + size))
        at += size
      }
      return parts.join(separator)
    }
    for (const id of [...VALID_18, ...WRONG_CHECK_18]) {
      for (const separator of [' ', '-', '  ', ' - ']) {
        expect(identifierInValue(spaced(id, [6, 8, 4], separator))).toBe('RESIDENT_ID')
        expect(identifierInValue(spaced(id, [6, 4, 4, 4], separator))).toBe('RESIDENT_ID')
        expect(identifierInValue(spaced(id, [3, 3, 4, 4, 4], separator))).toBe('RESIDENT_ID')
      }
    }
    for (const id of OLD_15) {
      expect(identifierInValue(spaced(id, [6, 6, 3], ' '))).toBe('RESIDENT_ID')
      expect(identifierInValue(spaced(id, [6, 6, 3], '-'))).toBe('RESIDENT_ID')
    }
    expect(identifierInValue('44030619851224002x')).toBe('RESIDENT_ID')
    expect(identifierInValue('１１０１０１１９９００３０７１２３３')).toBe('RESIDENT_ID')
    expect(identifierInValue(`referred with ID ${VALID_18[0] as string} on Monday`)).toBe('RESIDENT_ID')
    expect(identifierInValue(`身份证${OLD_15[0] as string}`)).toBe('RESIDENT_ID')
  })

  it('is not fooled by numbers of the same length that cannot be one', () => {
    expect(hasResidentIdShape('910101199003071233')).toBe(false) // no region code starts with 9
    expect(hasResidentIdShape('110101199013071233')).toBe(false) // month 13
    expect(hasResidentIdShape('110101199002301233')).toBe(false) // 30 February
    expect(hasResidentIdShape('110101900230123')).toBe(false)
  })
})

describe('phone numbers and e-mail addresses', () => {
  it('finds Chinese mobile numbers with and without +86 or 0086, in any spacing', () => {
    for (const value of [
      '13812345678', '19987654321', '138 1234 5678', '138-1234-5678', '138 - 1234 - 5678', '+86 138 1234 5678',
      '+8613812345678', '8613812345678', '0086 138 1234 5678', '0086-13812345678', '(+86) 138-1234-5678',
      '+86-138-1234-5678', '１３８１２３４５６７８', '138　1234　5678'
    ]) expect(identifierInValue(value), value).toBe('MOBILE')
    for (const value of ['call 13812345678 after five', '电话：138 1234 5678', 'mobile +86 138-1234-5678 (home)', '13812345678.0']) {
      expect(identifierInValue(value), value).toBe('MOBILE')
    }
  })

  it('finds international numbers written with +, and Chinese landlines written with their area code', () => {
    for (const value of ['+44 20 7946 0958', '+1 (555) 123-4567', '+4915112345678', '+33 1 23 45 67 89']) expect(identifierInValue(value), value).toBe('PHONE')
    for (const value of ['010-65123456', '(0571) 8765 4321', '0571-87654321', '021 6123 4567']) expect(identifierInValue(value), value).toBe('PHONE')
  })

  it('finds e-mail addresses, alone or in text', () => {
    for (const value of ['zhang.san@example.com', 'ZHANG@EXAMPLE.CN', 'contact wang_wu+flu@mail.example.org today', 'li＠example.com', '张三@例子.中国']) {
      expect(identifierInValue(value), value).toBe('EMAIL')
    }
  })

  it('leaves ordinary measurements, counts, dates, codes and text alone', () => {
    for (const value of [
      '0', '15', '37.5', '120', '-5', '1000000', '100080', '3.14159265358979', '0.00013812345678', '13.812345678',
      '-13812345678', '138123456789', '1712345678', '1712345678901', '+12.5', '12345678', '1234 5678',
      '2024-01-05', '20240105', '2024/01/05', '05.01.2024', '2024-01-05 13:45:00', '12:30:45', '10-20', '1990-2000',
      'A01.1', 'J10.1', 'San Bernardino', 'Mecklenburg-Western Pomerania', 'WNF', '0-5yrs', '12+ yrs', 'ward 13 bed 4',
      '上海市', 'N/A', '', 'a@b', 'user at example dot com', '1 000 000'
    ]) expect(identifierInValue(value), value).toBeNull()
  })
})

describe('identifier columns by name', () => {
  it('knows them in Chinese, English and pinyin, in any case and spacing', () => {
    for (const name of [
      '姓名', '名字', '患者姓名', '病人姓名', '身份证', '身份证号', '身份证号码', '证件号码', '护照号', '手机', '手机号', '手机号码', '电话',
      '联系电话', '联系方式', '住址', '地址', '家庭住址', '现住址', '邮箱', '电子邮件', '微信号', '行程轨迹', '经度', '纬度',
      'name', 'Name', 'NAME', 'full_name', 'FullName', 'first name', 'last-name', 'surname', 'patientName', 'Patient Name',
      'name_of_patient', 'guardian_name', 'phone', 'phone_number', 'PhoneNo', 'mobile', 'mobile_no', 'tel', 'Telephone',
      'cellphone', 'home_phone', 'contact_number', 'fax', 'address', 'home_address', 'Address Line 1', 'street',
      'email', 'e-mail', 'E_Mail', 'email_address', 'id_card', 'IDCard', 'id card no', 'id_number', 'ID No', 'identity_number',
      'national_id', 'resident_id', 'passport', 'passport_no', 'ssn', 'shenfenzheng', 'sfzh', 'xingming', 'shouji',
      'latitude', 'longitude', 'lat', 'lng', 'gps', 'trajectory', 'wechat', 'qq', 'bank_card'
    ]) expect(identifierByName(name), name).toBe(true)
  })

  it('leaves the columns of ordinary case records alone', () => {
    for (const name of [
      'id', 'record_id', 'case_id', 'patient_id', 'age', 'sex', 'county', 'county_name', 'disease_name', 'drug_name',
      'hospital_name', 'name_length', 'date.onset', 'date.tested', 'death', 'severe', 'population', 'count', 'cell_count',
      'province', 'district', 'occupation', 'education', 'parity', 'induced', 'spontaneous', 'stratum', 'pooled.stratum',
      'syndrome', 'week', 'region', 'outcome', 'weight_kg', 'temperature', 'identified', 'telemetry', 'rapid_notification',
      '疾病名称', '发病日期', '年龄', '性别', '职业', '区县', '病例编号'
    ]) expect(identifierByName(name), name).toBe(false)
  })
})
